package vmnet

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
)

// CloudInitNetworkConfig returns a cloud-init network-config (version 2)
// document for p: for NIC i an ethernet "id<i>" matched by MAC address and
// renamed eth<i>, with its MTU, addresses (IPv4 and IPv6), routes and
// nameservers. Default gateways are written as routes (to 0.0.0.0/0 or ::/0),
// not with the deprecated gateway4/gateway6; a route without a next hop is
// on-link ("scope: link") and a next hop outside the NIC's subnets gets
// "on-link: true". The DNS domain is put first in the search list. The YAML
// is written by hand with every string double-quoted (so MAC addresses are
// never read as numbers) and a fixed key order.
func CloudInitNetworkConfig(p *Plan) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, err
	}
	var b strings.Builder
	b.WriteString("version: 2\n")
	if len(p.NICs) == 0 {
		b.WriteString("ethernets: {}\n")
		return []byte(b.String()), nil
	}
	b.WriteString("ethernets:\n")
	for i := range p.NICs {
		writeEthernet(&b, i, &p.NICs[i])
	}
	return []byte(b.String()), nil
}

func writeEthernet(b *strings.Builder, i int, n *NIC) {
	fmt.Fprintf(b, "  id%d:\n", i)
	fmt.Fprintf(b, "    match:\n      macaddress: %s\n", yamlString(n.MAC))
	fmt.Fprintf(b, "    set-name: %s\n", yamlString(fmt.Sprintf("eth%d", i)))
	if n.MTU > 0 {
		fmt.Fprintf(b, "    mtu: %d\n", n.MTU)
	}
	if len(n.IPs) > 0 {
		b.WriteString("    addresses:\n")
		for _, ip := range n.IPs {
			fmt.Fprintf(b, "      - %s\n", yamlString(ip.Address))
		}
	}
	if len(n.Routes) > 0 {
		b.WriteString("    routes:\n")
		for _, r := range n.Routes {
			dst, _, _ := net.ParseCIDR(r.Dst) // validated
			fmt.Fprintf(b, "      - to: %s\n", yamlString(r.Dst))
			via := routeVia(n, r.GW, dst.To4() != nil)
			if via == "" {
				b.WriteString("        scope: \"link\"\n")
				continue
			}
			fmt.Fprintf(b, "        via: %s\n", yamlString(via))
			if !onSubnet(n, via) {
				b.WriteString("        on-link: true\n")
			}
		}
	}
	if n.DNS == nil {
		return
	}
	search := slices.Clone(n.DNS.Search)
	if n.DNS.Domain != "" && !slices.Contains(search, n.DNS.Domain) {
		search = append([]string{n.DNS.Domain}, search...)
	}
	if len(n.DNS.Nameservers) == 0 && len(search) == 0 {
		return
	}
	b.WriteString("    nameservers:\n")
	writeList(b, "addresses", n.DNS.Nameservers)
	writeList(b, "search", search)
}

func writeList(b *strings.Builder, key string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, "      %s:\n", key)
	for _, s := range items {
		fmt.Fprintf(b, "        - %s\n", yamlString(s))
	}
}

// yamlString quotes s as a YAML double-quoted scalar (a JSON string is one).
func yamlString(s string) string {
	q, _ := json.Marshal(s) // a string always encodes
	return string(q)
}
