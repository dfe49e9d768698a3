// Package masq installs per-attachment source NAT (masquerade) rules with
// nftables over netlink (no iptables or nft binary needed).
//
// All rules live in table "inet vmcni", chain "postrouting" (type nat, hook
// postrouting, priority srcnat). One rule per source address:
// "ip saddr <addr> ip daddr != <subnet> ip daddr != 224.0.0.0/4 masquerade"
// (IPv6: "ip6 saddr ... ip6 daddr != <subnet> masquerade"), tagged with the
// attachment key as rule user data. Remove deletes the attachment's rules and
// the table when it is left empty, so the host ends as it began. Changes are
// serialised host-wide with a lock file under /run/vmcni.
package masq

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TableName is the nftables table vmcni owns.
const TableName = "vmcni"

const chainName = "postrouting"

// lockPath serialises masquerade changes between plugin processes.
var lockPath = "/run/vmcni/masq.lock"

// Rule identifies an attachment's masquerade rules.
type Rule struct {
	Network     string
	ContainerID string
	IfName      string
	// Sources are the attachment's addresses with their subnet masks.
	Sources []*net.IPNet
}

func (r Rule) tag() []byte {
	return []byte("vmcni:" + r.Network + "/" + r.ContainerID + "/" + r.IfName)
}

var table = &nftables.Table{Family: nftables.TableFamilyINet, Name: TableName}

func chain() *nftables.Chain {
	return &nftables.Chain{
		Name: chainName, Table: table, Type: nftables.ChainTypeNAT,
		Hooknum: nftables.ChainHookPostrouting, Priority: nftables.ChainPriorityNATSource,
	}
}

func withLock(fn func(*nftables.Conn) error) error {
	if err := os.MkdirAll("/run/vmcni", 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("lock %q: %w", lockPath, err)
	}
	conn, err := nftables.New()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return fn(conn)
}

// Add installs r's rules (replacing any it had).
func Add(r Rule) error {
	return withLock(func(c *nftables.Conn) error {
		if err := deleteTagged(c, r.tag()); err != nil {
			return err
		}
		c.AddTable(table)
		ch := c.AddChain(chain())
		for _, src := range r.Sources {
			c.AddRule(&nftables.Rule{Table: table, Chain: ch, Exprs: exprsFor(src), UserData: r.tag()})
		}
		if err := c.Flush(); err != nil {
			return fmt.Errorf("add masquerade rules for %s: %w", r.tag(), err)
		}
		return nil
	})
}

// Remove deletes r's rules, and vmcni's table if no rule is left. Missing
// rules or table are success.
func Remove(r Rule) error {
	return withLock(func(c *nftables.Conn) error { return deleteTagged(c, r.tag()) })
}

// Count returns how many rules carry r's tag (for tests and CHECK).
func Count(r Rule) (int, error) {
	n := 0
	err := withLock(func(c *nftables.Conn) error {
		rules, err := c.GetRules(table, chain())
		if isMissing(err) {
			return nil
		}
		for _, rule := range rules {
			if bytes.Equal(rule.UserData, r.tag()) {
				n++
			}
		}
		return err
	})
	return n, err
}

func isMissing(err error) bool {
	return errors.Is(err, syscall.ENOENT) || errors.Is(err, os.ErrNotExist)
}

func deleteTagged(c *nftables.Conn, tag []byte) error {
	rules, err := c.GetRules(table, chain())
	if isMissing(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list masquerade rules: %w", err)
	}
	left := 0
	for _, rule := range rules {
		if bytes.Equal(rule.UserData, tag) {
			if err := c.DelRule(rule); err != nil {
				return err
			}
		} else {
			left++
		}
	}
	if left == 0 {
		c.DelTable(table)
	}
	if err := c.Flush(); err != nil && !isMissing(err) {
		return fmt.Errorf("delete masquerade rules %s: %w", tag, err)
	}
	return nil
}

func exprsFor(src *net.IPNet) []expr.Any {
	ip4 := src.IP.To4()
	proto, addrLen, srcOff, dstOff := byte(unix.NFPROTO_IPV4), uint32(4), uint32(12), uint32(16)
	addr := []byte(ip4)
	if ip4 == nil {
		proto, addrLen, srcOff, dstOff = unix.NFPROTO_IPV6, 16, 8, 24
		addr = src.IP.To16()
	}
	mask := []byte(src.Mask)
	subnet := make([]byte, len(addr))
	for i := range addr {
		subnet[i] = addr[i] & mask[i]
	}
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: srcOff, Len: addrLen},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
	}
	exprs = append(exprs, daddrNotIn(dstOff, addrLen, subnet, mask)...)
	if ip4 != nil {
		exprs = append(exprs, daddrNotIn(dstOff, addrLen, []byte{224, 0, 0, 0}, []byte{240, 0, 0, 0})...)
	}
	return append(exprs, &expr.Masq{})
}

func daddrNotIn(off, length uint32, network, mask []byte) []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: off, Len: length},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: length, Mask: mask, Xor: make([]byte, length)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: network},
	}
}

// CountAll returns how many rules vmcni's table holds (0 without a table).
func CountAll() (int, error) {
	conn, err := nftables.New()
	if err != nil {
		return 0, err
	}
	rules, err := conn.GetRules(table, chain())
	if isMissing(err) {
		return 0, nil
	}
	return len(rules), err
}
