package storage

import (
	"strings"

	"github.com/corral-project/corral/api"
	"github.com/corral-project/corral/internal/errs"
)

// extensions a file of each content type must have, so a template is never
// mistaken for an ISO and tools downstream can trust the suffix.
var extensions = map[string][]string{
	api.ContentISO:      {".iso", ".img"},
	api.ContentVZTmpl:   {".tar.gz", ".tar.xz", ".tar.zst"},
	api.ContentBackup:   {".tar", ".tar.gz", ".tar.zst", ".tar.lzo", ".vma", ".vma.zst", ".vma.gz"},
	api.ContentSnippets: nil, // any safe name
}

// CheckFilename validates an upload target name for content.
func CheckFilename(content, filename string) error {
	exts, ok := extensions[content]
	if !ok {
		return errs.Invalid("content", "uploads hold iso, vztmpl, backup or snippets")
	}
	if ValidateVolName(filename) != nil || strings.Contains(filename, "/") {
		return errs.Invalid("filename", "invalid file name %q (letters, digits, . _ + - only; no leading dot)", filename)
	}
	if len(exts) == 0 {
		return nil
	}
	for _, e := range exts {
		if strings.HasSuffix(filename, e) {
			return nil
		}
	}
	return errs.Invalid("filename", "%s files must end in one of %s", content, strings.Join(exts, ", "))
}
