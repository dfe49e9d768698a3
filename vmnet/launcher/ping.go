package launcher

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Ping sends ICMP echo requests to ip, one per interval, until one is
// answered or ctx ends, and returns the round-trip time of the first reply.
func Ping(ctx context.Context, ip net.IP) (time.Duration, error) {
	network, proto := "ip4:icmp", 1
	var reqType icmp.Type = ipv4.ICMPTypeEcho
	if ip.To4() == nil {
		network, proto, reqType = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest
	}
	conn, err := icmp.ListenPacket(network, "")
	if err != nil {
		return 0, fmt.Errorf("icmp socket: %w", err)
	}
	defer conn.Close()
	id := os.Getpid() & 0xffff
	for seq := 1; ; seq++ {
		msg := icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("vmnet")}}
		data, err := msg.Marshal(nil)
		if err != nil {
			return 0, err
		}
		sent := time.Now()
		if _, err := conn.WriteTo(data, &net.IPAddr{IP: ip}); err != nil && ctx.Err() != nil {
			return 0, err
		}
		deadline := sent.Add(300 * time.Millisecond)
		_ = conn.SetReadDeadline(deadline)
		buf := make([]byte, 1500)
		for {
			n, peer, err := conn.ReadFrom(buf)
			if err != nil {
				break
			}
			reply, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil {
				continue
			}
			echo, ok := reply.Body.(*icmp.Echo)
			if ok && echo.ID == id && peer.String() == ip.String() && (reply.Type == ipv4.ICMPTypeEchoReply || reply.Type == ipv6.ICMPTypeEchoReply) {
				return time.Since(sent), nil
			}
		}
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no echo reply from %s: %w", ip, ctx.Err())
		default:
		}
	}
}
