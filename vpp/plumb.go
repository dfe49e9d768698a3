package vpp

import (
	"errors"
	"fmt"
	"net"

	"go.fd.io/govpp/api"

	"github.com/vmcni/vmcni/vpp/vppapi"
)

// plumbVPP creates and configures the attachment's VPP objects, pushing an
// undo step after each object it creates. Every call's non-zero retval
// fails the ADD there.
func (a *addition) plumbVPP(l3 l3Addresses) error {
	conf := a.conf
	if conf.Network == NetworkL2 {
		if err := a.ensureBridgeDomain(); err != nil {
			return err
		}
	}
	var err error
	if conf.Interface == InterfaceMemif {
		err = a.createMemif()
	} else {
		err = a.createVhostUser()
	}
	if err != nil {
		return err
	}
	if err := a.vpp.SetMTU(a.index, uint32(conf.MTU)); err != nil {
		return err
	}
	if err := a.Step("mtu"); err != nil {
		return err
	}
	if conf.Network == NetworkL2 {
		if err := a.vpp.SetL2Bridge(a.index, conf.BridgeDomain); err != nil {
			return err
		}
		if err := a.Step("l2-bridge"); err != nil {
			return err
		}
	}
	if conf.Network == NetworkL3 {
		if err := a.plumbL3(l3.gateways, l3.guests); err != nil {
			return err
		}
	}
	if err := a.vpp.SetAdminUp(a.index, true); err != nil {
		return err
	}
	return a.Step("admin-up")
}

// ensureBridgeDomain creates the l2 bridge domain if it does not exist. The
// undo step deletes it only if this ADD created it and, by then, it has no
// member (another attachment may have joined it meanwhile).
func (a *addition) ensureBridgeDomain() error {
	id := a.conf.BridgeDomain
	bd, err := a.vpp.BridgeDomain(id)
	if err != nil {
		return err
	}
	if bd != nil {
		return nil
	}
	err = a.vpp.AddBridgeDomain(id, TagPrefix+networkHash(a.conf.Name))
	if errors.Is(err, api.BD_ALREADY_EXISTS) {
		return nil // a concurrent ADD created it: not ours to remove
	}
	if err != nil {
		return fmt.Errorf("create bridge domain %d: %w", id, err)
	}
	a.Undo(fmt.Sprintf("delete bridge domain %d", id), func() error {
		cur, derr := a.vpp.BridgeDomain(id)
		if derr != nil || cur == nil {
			return derr
		}
		if len(cur.Members) > 0 {
			a.log.Info("keeping the bridge domain this ADD created: it has members", "bd", id, "members", cur.Members)
			return nil
		}
		return a.vpp.DeleteBridgeDomain(id)
	})
	return a.Step("bridge-domain")
}

func (a *addition) createVhostUser() error {
	v := vppapi.VhostUser{Socket: a.paths.Socket, Server: a.conf.Mode == RoleClient, Tag: a.st.Tag, MAC: vppMAC(a.conf)}
	index, err := a.vpp.CreateVhostUser(v)
	if err != nil {
		return err
	}
	a.index = index
	a.Undo("delete vhost-user interface", func() error { return a.vpp.DeleteVhostUser(index) })
	return a.Step("interface")
}

func (a *addition) createMemif() error {
	m := a.conf.Memif
	socketID, err := a.vpp.AddMemifSocket(a.paths.Socket)
	if err != nil {
		return err
	}
	a.Undo("delete memif socket registration", func() error { return a.vpp.DeleteMemifSocket(socketID) })
	if err = a.Step("memif-socket"); err != nil {
		return err
	}
	index, err := a.vpp.CreateMemif(vppapi.Memif{
		Master: m.Role == RoleClient, IPMode: m.Mode == "ip", SocketID: socketID, ID: m.ID,
		RxQueues: uint8(m.RxQueues), TxQueues: uint8(m.TxQueues), RingSize: m.RingSize,
		BufferSize: uint16(m.BufferSize), MAC: vppMAC(a.conf), Secret: m.Secret,
	})
	if err != nil {
		return err
	}
	a.index = index
	a.Undo("delete memif interface", func() error { return a.vpp.DeleteMemif(index) })
	if err := a.Step("interface"); err != nil {
		return err
	}
	if err := a.vpp.SetTag(index, a.st.Tag); err != nil {
		return err
	}
	return a.Step("tag")
}

func vppMAC(conf *NetConf) net.HardwareAddr {
	if conf.VppMAC == "" {
		return nil
	}
	mac, _ := net.ParseMAC(conf.VppMAC) // validated
	return mac
}
