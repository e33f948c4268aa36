package server

import (
	"reflect"

	"github.com/corral-project/corral/api"
)

// routes registers every operation. Each handler file adds its resource's
// table; reading one of them shows path, method and access rule together.
func (s *Server) routes() {
	s.systemRoutes()
	s.accessRoutes()
	s.nodeRoutes()
	s.clusterRoutes()
	s.taskRoutes()
	s.storageRoutes()
	s.vmRoutes()
	s.vmTemplateRoutes()
	s.vmSnapshotRoutes()
	s.vncRoutes()
	s.vmDiskRoutes()
	s.vmAttachRoutes()
	s.containerRoutes()
	s.networkRoutes()
	s.firewallRoutes()
	s.containerSnapshotRoutes()
	s.templateRoutes()
	s.eventRoutes()
	s.metricsRoutes()
	publishPrivs(s.api, reflect.TypeFor[api.VMUpdate]())
	publishPrivs(s.api, reflect.TypeFor[api.CTUpdate]())
}
