package fakevpp

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"sync"
	"time"

	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"
)

// The socket protocol (VPP's socket API, as govpp's socketclient speaks
// it): every frame is a 16-byte header whose bytes 8:12 are the data length
// (big endian), then the data, which starts with the message ID (big-endian
// uint16). Requests carry client_index at data[2:6] and context at
// data[6:10]; replies carry context at data[2:6].
const (
	headerSize = 16
	// sockclntCreateID is the one fixed message ID: the first request of
	// every connection, whose reply holds the table of all the others.
	sockclntCreateID = 15
	// maxFrame bounds a frame's data; larger is garbage.
	maxFrame = 1 << 20
	// maxTableName is the room of message_table_entry.name (string[64]).
	maxTableName = 63
)

// msgTable numbers every binapi message registered in this process (the
// binapi packages it links, the plugin's among them), as VPP numbers the
// messages of its loaded plugins.
type msgTable struct {
	byID    map[uint16]api.Message
	ids     map[string]uint16 // by name_crc
	entries []memclnt.MessageTableEntry
}

var table = sync.OnceValue(func() *msgTable {
	protos := map[string]api.Message{}
	var keys []string
	for _, msgs := range api.GetRegisteredMessages() {
		for key, m := range msgs {
			if _, dup := protos[key]; !dup && len(key) <= maxTableName {
				protos[key] = m
				keys = append(keys, key)
			}
		}
	}
	sort.Strings(keys)
	t := &msgTable{byID: map[uint16]api.Message{}, ids: map[string]uint16{}}
	next := uint16(sockclntCreateID + 1)
	for _, key := range keys {
		id := next
		if protos[key].GetMessageName() == "sockclnt_create" {
			id = sockclntCreateID
		} else {
			next++
		}
		t.byID[id], t.ids[key] = protos[key], id
		t.entries = append(t.entries, memclnt.MessageTableEntry{Index: id, Name: key})
	}
	sort.Slice(t.entries, func(a, b int) bool { return t.entries[a].Index < t.entries[b].Index })
	return t
})

func msgKey(m api.Message) string { return m.GetMessageName() + "_" + m.GetCrcString() }

// ServeSocket serves VPP's binary API on a unix socket at path (which must
// not exist), for clients such as govpp's socketclient adapter: vm-vpp's
// production connector, in this process or in plugin binaries. Each
// connection is a client; its requests go through the same model as
// Connector's, one at a time, and Connections counts it. A connection that
// sends garbage (a bad frame, an unknown message ID, an undecodable
// request) is closed. stop closes the listener and every connection, waits
// for them and removes the socket file; it may be called more than once.
func (v *VPP) ServeSocket(path string) (stop func(), err error) {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("fakevpp: listen on %q: %w", path, err)
	}
	s := &server{v: v, l: l, conns: map[*net.UnixConn]bool{}}
	s.wg.Add(1)
	go s.accept()
	var once sync.Once
	return func() { once.Do(s.stop) }, nil
}

// server is one ServeSocket listener and its connections.
type server struct {
	v  *VPP
	l  *net.UnixListener
	wg sync.WaitGroup // the accept loop and one per connection

	mu     sync.Mutex // guards conns and closed
	conns  map[*net.UnixConn]bool
	closed bool
}

func (s *server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.l.AcceptUnix()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil { // EMFILE and the like: retry
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()

		s.v.mu.Lock()
		s.v.connections++
		s.v.mu.Unlock()
		go s.serve(c)
	}
}

func (s *server) stop() {
	s.mu.Lock()
	s.closed = true
	_ = s.l.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// serve answers one connection's requests until it closes or sends
// garbage.
func (s *server) serve(c *net.UnixConn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		_ = c.Close()
	}()
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	sess := &session{v: s.v, t: table()}
	for {
		data, err := readFrame(r)
		if err != nil {
			return
		}
		frames, err := sess.handle(data)
		if err != nil {
			return
		}
		for _, f := range frames {
			if err := writeFrame(w, f); err != nil {
				return
			}
		}
		if err := w.Flush(); err != nil {
			return
		}
	}
}

func readFrame(r io.Reader) ([]byte, error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(h[8:12])
	if n > maxFrame {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(r, data); err != nil {
		return nil, err
	}
	return data, nil
}

func writeFrame(w io.Writer, data []byte) error {
	var h [headerSize]byte
	binary.BigEndian.PutUint32(h[8:12], uint32(len(data)))
	if _, err := w.Write(h[:]); err != nil {
		return err
	}
	_, err := w.Write(data)
	return err
}

// session is one connection's client registration.
type session struct {
	v *VPP
	t *msgTable
	// registered: sockclnt_create was answered; hidden are the IDs of the
	// messages incompatible at that time, unknown to this client.
	registered bool
	hidden     map[uint16]bool
}

// handle answers one request with the frames to send back; an error means
// garbage.
func (s *session) handle(data []byte) ([][]byte, error) {
	if len(data) < 10 {
		return nil, fmt.Errorf("message of %d bytes", len(data))
	}
	id := binary.BigEndian.Uint16(data[0:2])
	if !s.registered {
		if id != sockclntCreateID {
			return nil, fmt.Errorf("first message has ID %d, not sockclnt_create", id)
		}
		return s.create(data)
	}
	proto, ok := s.t.byID[id]
	if !ok || s.hidden[id] || id == sockclntCreateID || proto.GetMessageType() != api.RequestMessage {
		return nil, fmt.Errorf("unexpected message ID %d", id)
	}
	context := binary.BigEndian.Uint32(data[6:10])
	var replies []api.Message
	if proto.GetMessageName() == "sockclnt_delete" {
		if err := codec.DefaultCodec.DecodeMsg(data, &memclnt.SockclntDelete{}); err != nil {
			return nil, fmt.Errorf("decode sockclnt_delete: %w", err)
		}
		replies = []api.Message{&memclnt.SockclntDeleteReply{}}
	} else {
		var err error
		if replies, err = s.v.respond(proto.GetMessageName(), data); err != nil {
			return nil, err
		}
	}
	frames := make([][]byte, 0, len(replies))
	for _, r := range replies {
		rid, ok := s.t.ids[msgKey(r)]
		if !ok {
			return nil, fmt.Errorf("reply %s has no message ID", msgKey(r))
		}
		f, err := encodeReply(r, rid, context)
		if err != nil {
			return nil, err
		}
		frames = append(frames, f)
	}
	return frames, nil
}

// create registers the client: its index and the message table without
// the messages made incompatible.
func (s *session) create(data []byte) ([][]byte, error) {
	req := &memclnt.SockclntCreate{}
	if err := codec.DefaultCodec.DecodeMsg(data, req); err != nil {
		return nil, fmt.Errorf("decode sockclnt_create: %w", err)
	}
	s.v.mu.Lock()
	index := s.v.nextClient
	s.v.nextClient++
	incompat := make(map[string]bool, len(s.v.incompat))
	for n := range s.v.incompat {
		incompat[n] = true
	}
	s.v.mu.Unlock()

	reply := &memclnt.SockclntCreateReply{Index: index}
	s.hidden = map[uint16]bool{}
	for _, e := range s.t.entries {
		if incompat[s.t.byID[e.Index].GetMessageName()] {
			s.hidden[e.Index] = true
			continue
		}
		reply.MessageTable = append(reply.MessageTable, e)
	}
	reply.Count = uint16(len(reply.MessageTable))
	// sockclnt_create is laid out as a reply: its context is at data[2:6].
	f, err := encodeReply(reply, s.t.ids[msgKey(reply)], binary.BigEndian.Uint32(data[2:6]))
	if err != nil {
		return nil, err
	}
	s.registered = true
	return [][]byte{f}, nil
}
