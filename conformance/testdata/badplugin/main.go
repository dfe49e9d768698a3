// Command badplugin is a deliberately broken CNI plugin for the
// conformance suite's negative test. Its config key "misbehave" selects
// the fault: "junk" prints a line before the ADD result; "leak" creates a
// host veth pair named <leakPrefix><4 hex of the container ID>{a,b} on ADD
// and never removes it. In both modes every error is code 999 and the ADD
// result names an eth0 it never creates. VERSION, DEL, CHECK, GC and STATUS
// are well-behaved.
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/vishvananda/netlink"
)

type conf struct {
	CNIVersion string `json:"cniVersion"`
	Misbehave  string `json:"misbehave"`
	LeakPrefix string `json:"leakPrefix"`
}

func fail(msg string) {
	fmt.Printf(`{"cniVersion":"1.1.0","code":999,"msg":%q}`, msg)
	os.Exit(1)
}

func main() {
	cmd := os.Getenv("CNI_COMMAND")
	if cmd == "VERSION" {
		fmt.Print(`{"cniVersion":"1.1.0","supportedVersions":["0.4.0","1.0.0","1.1.0"]}`)
		return
	}
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(err.Error())
	}
	var c conf
	if err := json.Unmarshal(data, &c); err != nil {
		fail(err.Error())
	}
	if cmd != "ADD" {
		return
	}
	id := os.Getenv("CNI_CONTAINERID")
	if c.Misbehave == "leak" && c.LeakPrefix != "" {
		sum := sha256.Sum256([]byte(id))
		name := c.LeakPrefix + hex.EncodeToString(sum[:2])
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name + "a"}, PeerName: name + "b"}
		if err := netlink.LinkAdd(veth); err != nil {
			fail(err.Error())
		}
	}
	if c.Misbehave == "junk" {
		fmt.Println("plugin says hello")
	}
	fmt.Printf(`{"cniVersion":%q,"interfaces":[{"name":"eth0","sandbox":%q}]}`, c.CNIVersion, os.Getenv("CNI_NETNS"))
}
