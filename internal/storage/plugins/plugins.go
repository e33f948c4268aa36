// Package plugins registers every storage plugin: adding one is a new
// package and one line here.
package plugins

import (
	"github.com/corral-project/corral/internal/storage"
	"github.com/corral-project/corral/internal/storage/btrfs"
	"github.com/corral-project/corral/internal/storage/dir"
	"github.com/corral-project/corral/internal/storage/iscsi"
)

func init() {
	storage.Register("dir", dir.Plugin{})
	storage.Register("btrfs", btrfs.Plugin{})
	storage.Register("iscsi", iscsi.Plugin{})
}
