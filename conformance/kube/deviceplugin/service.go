package deviceplugin

import (
	"context"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// service implements the v1beta1 DevicePlugin gRPC service for a Plugin.
type service struct {
	p *Plugin
}

var _ pluginapi.DevicePluginServer = (*service)(nil)

// GetDevicePluginOptions asks for neither PreStartContainer nor
// GetPreferredAllocation calls.
func (s *service) GetDevicePluginOptions(context.Context, *pluginapi.Empty) (*pluginapi.DevicePluginOptions, error) {
	return &pluginapi.DevicePluginOptions{}, nil
}

// ListAndWatch sends every device, Healthy, then holds the stream open
// until the server stops or the kubelet goes away.
func (s *service) ListAndWatch(_ *pluginapi.Empty, stream pluginapi.DevicePlugin_ListAndWatchServer) error {
	resp := &pluginapi.ListAndWatchResponse{}
	for _, d := range s.p.opts.Devices {
		resp.Devices = append(resp.Devices, &pluginapi.Device{ID: d, Health: pluginapi.Healthy})
	}
	if err := stream.Send(resp); err != nil {
		return fmt.Errorf("send the devices of %q: %w", s.p.opts.ResourceName, err)
	}
	s.p.log.Debug("listed devices to the kubelet", "devices", len(resp.Devices))
	<-stream.Context().Done()
	return nil
}

// GetPreferredAllocation prefers the must-include devices, then the
// available ones in the kubelet's order.
func (s *service) GetPreferredAllocation(_ context.Context, req *pluginapi.PreferredAllocationRequest) (*pluginapi.PreferredAllocationResponse, error) {
	resp := &pluginapi.PreferredAllocationResponse{}
	for _, cr := range req.ContainerRequests {
		size := int(cr.AllocationSize)
		ids := make([]string, 0, size)
		picked := make(map[string]bool, size)
		for _, list := range [][]string{cr.MustIncludeDeviceIDs, cr.AvailableDeviceIDs} {
			for _, id := range list {
				if len(ids) < size && !picked[id] {
					ids = append(ids, id)
					picked[id] = true
				}
			}
		}
		resp.ContainerResponses = append(resp.ContainerResponses,
			&pluginapi.ContainerPreferredAllocationResponse{DeviceIDs: ids})
	}
	return resp, nil
}

// Allocate answers each container request with EnvName(ResourceName) set to
// the requested device IDs, comma-separated, and records the grant.
func (s *service) Allocate(_ context.Context, req *pluginapi.AllocateRequest) (*pluginapi.AllocateResponse, error) {
	resp := &pluginapi.AllocateResponse{}
	grants := make([][]string, 0, len(req.ContainerRequests))
	for _, cr := range req.ContainerRequests {
		for _, id := range cr.DevicesIDs {
			if !s.p.devices[id] {
				return nil, status.Errorf(codes.InvalidArgument,
					"allocate %q: unknown device %q", s.p.opts.ResourceName, id)
			}
		}
		resp.ContainerResponses = append(resp.ContainerResponses, &pluginapi.ContainerAllocateResponse{
			Envs: map[string]string{s.p.env: strings.Join(cr.DevicesIDs, ",")},
		})
		grants = append(grants, append([]string(nil), cr.DevicesIDs...))
	}
	s.p.allocMu.Lock()
	s.p.allocs = append(s.p.allocs, grants...)
	s.p.allocMu.Unlock()
	s.p.log.Info("allocated devices", "containers", grants)
	return resp, nil
}

// PreStartContainer has nothing to do (and is not asked for).
func (s *service) PreStartContainer(context.Context, *pluginapi.PreStartContainerRequest) (*pluginapi.PreStartContainerResponse, error) {
	return &pluginapi.PreStartContainerResponse{}, nil
}
