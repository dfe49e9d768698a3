package fakevpp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"sync"

	"go.fd.io/govpp/adapter"
	"go.fd.io/govpp/adapter/mock"
	"go.fd.io/govpp/api"
	"go.fd.io/govpp/binapi/memclnt"
	"go.fd.io/govpp/codec"
)

// respond is the fake's one request path, shared by the mock adapter and
// the socket server: it decodes data (an encoded request named name,
// header included), applies it to the model and returns the replies in
// order: one reply, or a dump's details (possibly none; the control_ping
// the client sends next ends the dump). No replies and no error means a
// request the model does not know, recorded in Unknown: VPP would answer
// it, the fake lets the client time out.
func (v *VPP) respond(name string, data []byte) ([]api.Message, error) {
	if name == "control_ping" {
		return []api.Message{&memclnt.ControlPingReply{}}, nil
	}
	proto, ok := requestTypes[name]
	if !ok {
		v.mu.Lock()
		v.unknown = append(v.unknown, name)
		v.mu.Unlock()
		return nil, nil
	}
	m := reflect.New(reflect.TypeOf(proto).Elem()).Interface().(api.Message)
	if err := codec.DefaultCodec.DecodeMsg(data, m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", name, err)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	v.calls = append(v.calls, Call{Name: name, Msg: m})
	var retval int32
	if f := v.failures[name]; len(f) > 0 {
		retval, v.failures[name] = f[0], f[1:]
	}
	reply, details := v.apply(m, retval)
	if details != nil {
		return details, nil
	}
	if retval != 0 {
		reflectRetval(reply, retval)
	}
	return []api.Message{reply}, nil
}

// reflectRetval sets the Retval field every binapi reply has.
func reflectRetval(reply api.Message, retval int32) {
	reflect.ValueOf(reply).Elem().FieldByName("Retval").SetInt(int64(retval))
}

// encodeReply encodes msg with message ID id and the request's context in
// the header: at data[2:6] for replies and details, at data[6:10] for
// sockclnt_create_reply, which binapi lays out as a request.
func encodeReply(msg api.Message, id uint16, context uint32) ([]byte, error) {
	data, err := codec.DefaultCodec.EncodeMsg(msg, id)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", msg.GetMessageName(), err)
	}
	switch msg.GetMessageType() {
	case api.ReplyMessage, api.EventMessage:
		binary.BigEndian.PutUint32(data[2:6], context)
	case api.RequestMessage:
		binary.BigEndian.PutUint32(data[6:10], context)
	}
	return data, nil
}

// mockConn is one Connector connection: govpp's mock adapter (shared by
// all of them) numbers the messages, the fake's message check and respond
// answer, through this connection's own callback.
type mockConn struct {
	*mock.VppAdapter
	v *VPP

	mu       sync.Mutex // guards callback
	callback adapter.MsgCallback
}

// GetMsgID fails for the messages made incompatible: the mock alone knows
// every message.
func (a *mockConn) GetMsgID(name, crc string) (uint16, error) {
	a.v.mu.Lock()
	bad := a.v.incompat[name]
	a.v.mu.Unlock()
	if bad {
		return 0, &adapter.UnknownMsgError{MsgName: name, MsgCrc: crc}
	}
	return a.VppAdapter.GetMsgID(name, crc)
}

// SetMsgCallback keeps the connection's callback (the shared mock adapter
// holds only one).
func (a *mockConn) SetMsgCallback(cb adapter.MsgCallback) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.callback = cb
}

// SendMsg answers the request through respond, synchronously as the mock
// adapter does.
func (a *mockConn) SendMsg(context uint32, data []byte) error {
	if len(data) < 2 {
		return errors.New("fakevpp: message without an ID")
	}
	id := binary.BigEndian.Uint16(data[0:2])
	name, ok := a.GetMsgNameByID(id)
	if !ok {
		return fmt.Errorf("fakevpp: unknown message ID %d", id)
	}
	replies, err := a.v.respond(name, data)
	if err != nil {
		return fmt.Errorf("fakevpp: %w", err)
	}
	a.mu.Lock()
	cb := a.callback
	a.mu.Unlock()
	for _, r := range replies {
		rid, err := a.VppAdapter.GetMsgID(r.GetMessageName(), r.GetCrcString())
		if err != nil {
			return fmt.Errorf("fakevpp: %w", err)
		}
		b, err := encodeReply(r, rid, context)
		if err != nil {
			return fmt.Errorf("fakevpp: %w", err)
		}
		if cb != nil {
			cb(rid, b)
		}
	}
	return nil
}
