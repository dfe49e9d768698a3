package deviceplugin

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	pluginapi "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

// fakeKubelet serves the kubelet's v1beta1 Registration service on
// dir/kubelet.sock and, like the kubelet's device manager, answers Register
// only after dialling the plugin back and calling GetDevicePluginOptions,
// then reads its ListAndWatch stream.
type fakeKubelet struct {
	dir  string
	srv  *grpc.Server
	reqs chan *pluginapi.RegisterRequest // every accepted registration
	// lists gets every ListAndWatch response, from any registration.
	lists chan []*pluginapi.Device
	// plugins gets a client to the plugin of every accepted registration.
	plugins chan pluginapi.DevicePluginClient
	wg      sync.WaitGroup // the server and the ListAndWatch readers

	// mu guards conns.
	mu    sync.Mutex
	conns []*grpc.ClientConn
}

// startKubelet starts a fake kubelet in dir. With cleanup it first deletes
// every socket in dir, as a starting kubelet does.
func startKubelet(t *testing.T, dir string, cleanup bool) *fakeKubelet {
	t.Helper()
	if cleanup {
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Type()&fs.ModeSocket != 0 {
				if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	l, err := net.Listen("unix", filepath.Join(dir, "kubelet.sock"))
	if err != nil {
		t.Fatal(err)
	}
	k := &fakeKubelet{
		dir:     dir,
		srv:     grpc.NewServer(),
		reqs:    make(chan *pluginapi.RegisterRequest, 16),
		lists:   make(chan []*pluginapi.Device, 16),
		plugins: make(chan pluginapi.DevicePluginClient, 16),
	}
	pluginapi.RegisterRegistrationServer(k.srv, k)
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		_ = k.srv.Serve(l)
	}()
	t.Cleanup(k.stop)
	return k
}

// Register implements pluginapi.RegistrationServer.
func (k *fakeKubelet) Register(ctx context.Context, req *pluginapi.RegisterRequest) (*pluginapi.Empty, error) {
	if req.Version != pluginapi.Version {
		return nil, errors.New("unsupported version " + req.Version)
	}
	conn, err := grpc.NewClient("unix://"+filepath.Join(k.dir, req.Endpoint),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	k.mu.Lock()
	k.conns = append(k.conns, conn)
	k.mu.Unlock()
	client := pluginapi.NewDevicePluginClient(conn)
	if _, err := client.GetDevicePluginOptions(ctx, &pluginapi.Empty{}); err != nil {
		return nil, err
	}
	stream, err := client.ListAndWatch(context.Background(), &pluginapi.Empty{})
	if err != nil {
		return nil, err
	}
	k.wg.Add(1)
	go func() {
		defer k.wg.Done()
		for {
			resp, err := stream.Recv()
			if err != nil {
				return
			}
			k.lists <- resp.Devices
		}
	}()
	k.reqs <- req
	k.plugins <- client
	return &pluginapi.Empty{}, nil
}

// stop stops the fake kubelet and removes kubelet.sock; it may run twice.
func (k *fakeKubelet) stop() {
	k.srv.Stop()
	k.mu.Lock()
	for _, c := range k.conns {
		_ = c.Close()
	}
	k.conns = nil
	k.mu.Unlock()
	k.wg.Wait()
	_ = os.Remove(filepath.Join(k.dir, "kubelet.sock"))
}
