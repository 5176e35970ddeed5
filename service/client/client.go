// Package client is the Go client of the tpmcard service: it dials the
// service's unix socket, says Hello and offers one typed method per
// request. Failed requests return a *wire.StatusError; test them with
// errors.Is(err, wire.StatusError{Status: wire.PINIncorrect}) or
// wire.StatusOf(err).
//
// A Client may be used from several goroutines; their requests are
// pipelined on its one connection (see wire.Conn), which the service
// answers in order. The connection is one PKCS#11 application to the
// service: its logins end when it is closed.
package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tpmcard/tpmcard/service/wire"
	"github.com/tpmcard/tpmcard/tpmcard/secret"
)

// DefaultSocket is where the service listens unless TPMCARD_SOCKET says
// otherwise.
const DefaultSocket = wire.DefaultSocket

// SocketEnv names the environment variable that overrides DefaultSocket.
const SocketEnv = wire.SocketEnv

// SocketPath returns the socket the client dials by default: $TPMCARD_SOCKET
// or DefaultSocket.
func SocketPath() string {
	if p := os.Getenv(SocketEnv); p != "" {
		return p
	}
	return DefaultSocket
}

// Name is sent in Hello for the service's log.
const Name = "tpmcard-go-client/1"

// Client is a connection to the service.
type Client struct {
	nc    net.Conn
	w     *wire.Conn
	hello wire.HelloReply

	progMu   sync.Mutex // one GenerateKeyPair with a progress callback at a time
	progress func(wire.Progress)
}

// Dial connects to the service at socketPath ("" means SocketPath()) and
// performs the Hello handshake. The service closes a connection that holds
// no session and sends no request for its idle timeout (2 minutes by
// default); a program that waits longer between uses without a session
// (or a Signer, which holds one) dials again.
func Dial(socketPath string) (*Client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return DialContext(ctx, socketPath)
}

// DialContext is Dial bounded by ctx (the connection and the handshake).
func DialContext(ctx context.Context, socketPath string) (*Client, error) {
	if socketPath == "" {
		socketPath = SocketPath()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", socketPath)
	if err != nil {
		return nil, &DialError{Socket: socketPath, Err: err}
	}
	c := &Client{nc: nc, w: wire.NewConn(nc)}
	c.w.OnProgress = func(p wire.Progress) {
		if c.progress != nil {
			c.progress(p)
		}
	}
	if os.Getenv("TPMCARD_DEBUG") == "wire" {
		c.w.Trace = func(dir string, t wire.Type, msg any) {
			fmt.Fprintf(os.Stderr, "tpmcard wire: %s %v %+v\n", dir, t, msg)
		}
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	h, err := c.w.Hello(Name)
	_ = nc.SetDeadline(time.Time{})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("tpmcard: hello to %s: %w", socketPath, err)
	}
	c.hello = *h
	return c, nil
}

// ErrServiceUnreachable: no service listens at the socket (it is missing,
// or nothing accepts on it). ErrSocketForbidden: the socket exists but
// this user may not connect to it. A DialError matches one of them.
var (
	ErrServiceUnreachable = errors.New("tpmcard: the service is not running")
	ErrSocketForbidden    = errors.New("tpmcard: not allowed to connect to the service's socket")
)

// DialError is a failure to connect to the service's socket (not one of
// the handshake after it).
type DialError struct {
	Socket string
	Err    error
}

func (e *DialError) Error() string {
	return fmt.Sprintf("tpmcard: connecting to the service at %s: %v", e.Socket, e.Err)
}

func (e *DialError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrServiceUnreachable) and ErrSocketForbidden
// true for the dial failures they name.
func (e *DialError) Is(target error) bool {
	switch target {
	case ErrServiceUnreachable:
		return errors.Is(e.Err, syscall.ENOENT) || errors.Is(e.Err, syscall.ECONNREFUSED)
	case ErrSocketForbidden:
		return errors.Is(e.Err, syscall.EACCES) || errors.Is(e.Err, syscall.EPERM)
	}
	return false
}

// Close ends the connection, and with it every login it holds.
func (c *Client) Close() error { return c.nc.Close() }

// Server is the service's Hello reply: its version and whether its TPM is
// simulated.
func (c *Client) Server() wire.HelloReply { return c.hello }

// call is wire.Conn.Call.
func (c *Client) call(req, resp any) error { return c.w.Call(req, resp) }

// ---------------------------------------------------------------------------
// Cards.

// ListCards returns every card with its state.
func (c *Client) ListCards() ([]wire.TokenInfo, error) {
	var r wire.Cards
	if err := c.call(&wire.ListCards{}, &r); err != nil {
		return nil, err
	}
	return r.Cards, nil
}

// Mechanisms returns the mechanisms a card supports.
func (c *Client) Mechanisms(serial string) ([]wire.MechanismInfo, error) {
	var r wire.MechanismList
	if err := c.call(&wire.Mechanisms{Serial: serial}, &r); err != nil {
		return nil, err
	}
	return r.Mechanisms, nil
}

// ---------------------------------------------------------------------------
// Sessions and login.

// OpenSession opens a session on a card.
func (c *Client) OpenSession(serial string, readWrite bool) (uint32, error) {
	var r wire.SessionOpened
	if err := c.call(&wire.OpenSession{Serial: serial, ReadWrite: readWrite}, &r); err != nil {
		return 0, err
	}
	return r.Session, nil
}

// CloseSession closes a session. Closing the last one on a card logs this
// connection out of it.
func (c *Client) CloseSession(session uint32) error {
	return c.call(&wire.CloseSession{Session: session}, nil)
}

// CloseAllSessions closes every session of this connection on a card.
func (c *Client) CloseAllSessions(serial string) error {
	return c.call(&wire.CloseAllSessions{Serial: serial}, nil)
}

// SessionInfo returns a session's CK_STATE and whether it is read-write.
func (c *Client) SessionInfo(session uint32) (wire.SessionState, error) {
	var r wire.SessionState
	err := c.call(&wire.SessionInfo{Session: session}, &r)
	return r, err
}

// Login logs this connection in to the session's card: with the PIN as
// wire.UserNormal, with the PUK as wire.UserSO.
func (c *Client) Login(session uint32, user wire.UserType, pin secret.Secret) error {
	return c.call(&wire.Login{Session: session, UserType: user, PIN: pin}, nil)
}

// Logout logs this connection out of the session's card.
func (c *Client) Logout(session uint32) error {
	return c.call(&wire.Logout{Session: session}, nil)
}

// InitPIN sets a new PIN with the PUK of an SO login, unblocking the card.
func (c *Client) InitPIN(session uint32, newPIN secret.Secret) error {
	return c.call(&wire.InitPIN{Session: session, NewPIN: newPIN}, nil)
}

// SetPIN changes the PIN (the PUK when logged in as SO).
func (c *Client) SetPIN(session uint32, oldPIN, newPIN secret.Secret) error {
	_, err := c.SetPINWarn(session, oldPIN, newPIN)
	return err
}

// SetPINWarn is SetPIN that also returns the service's warning: on
// success, what the change left undone (a record the service could not
// write), "" when nothing.
func (c *Client) SetPINWarn(session uint32, oldPIN, newPIN secret.Secret) (warning string, err error) {
	var r wire.Ack
	err = c.call(&wire.SetPIN{Session: session, OldPIN: oldPIN, NewPIN: newPIN}, &r)
	return r.Warning, err
}

// Unblock resets a card's PIN with its PUK, without a session.
func (c *Client) Unblock(serial string, puk, newPIN secret.Secret) error {
	return c.call(&wire.Unblock{Serial: serial, PUK: puk, NewPIN: newPIN}, nil)
}

// ---------------------------------------------------------------------------
// Objects and keys.

// FindObjects returns the handles of the objects matching template.
func (c *Client) FindObjects(session uint32, template ...wire.Attribute) ([]uint64, error) {
	var r wire.Objects
	if err := c.call(&wire.FindObjects{Session: session, Template: template}, &r); err != nil {
		return nil, err
	}
	return r.Handles, nil
}

// GetAttributes reads attributes of an object, one result per type.
func (c *Client) GetAttributes(session uint32, object uint64, types ...uint32) ([]wire.AttributeResult, error) {
	var r wire.AttributeValues
	if err := c.call(&wire.GetAttributes{Session: session, Object: object, Types: types}, &r); err != nil {
		return nil, err
	}
	if len(r.Values) != len(types) {
		return nil, fmt.Errorf("tpmcard: %d attribute values for %d types", len(r.Values), len(types))
	}
	return r.Values, nil
}

// Sign signs data with a private key object; mechanism is a CKM_* value and
// param its raw parameter.
func (c *Client) Sign(session uint32, object uint64, mechanism uint32, param, data []byte) ([]byte, error) {
	var r wire.Signature
	if err := c.call(&wire.Sign{Session: session, Object: object, Mechanism: mechanism, Param: param, Data: data}, &r); err != nil {
		return nil, err
	}
	return r.Sig, nil
}

// SignLength returns the length of the signature Sign would make.
func (c *Client) SignLength(session uint32, object uint64, mechanism uint32) (int, error) {
	var r wire.Length
	if err := c.call(&wire.SignLength{Session: session, Object: object, Mechanism: mechanism}, &r); err != nil {
		return 0, err
	}
	return r.N, nil
}

// GenerateKeyPair creates a key in the TPM (administrators only) and
// returns its public and private object handles. progress, if not nil,
// sees the service's Progress frames.
func (c *Client) GenerateKeyPair(session uint32, algorithm, label string, id []byte, progress func(wire.Progress)) (public, private uint64, err error) {
	c.progMu.Lock()
	defer c.progMu.Unlock()
	c.progress = progress
	defer func() { c.progress = nil }()
	var r wire.KeyPairGenerated
	if err := c.call(&wire.GenerateKeyPair{Session: session, Algorithm: algorithm, Label: label, ID: id}, &r); err != nil {
		return 0, 0, err
	}
	return r.Public, r.Private, nil
}

// DestroyObject deletes a key (administrators only).
func (c *Client) DestroyObject(session uint32, object uint64) error {
	return c.call(&wire.DestroyObject{Session: session, Object: object}, nil)
}

// GenerateRandom returns n random bytes from the TPM.
func (c *Client) GenerateRandom(session uint32, n int) ([]byte, error) {
	var r wire.Random
	if err := c.call(&wire.GenerateRandom{Session: session, N: n}, &r); err != nil {
		return nil, err
	}
	return r.Bytes, nil
}

// ---------------------------------------------------------------------------
// Administration.

// Provision creates a card (administrators only). The reply's PUK is set
// only when the service generated it; it is shown this once.
func (c *Client) Provision(p wire.Provision) (*wire.Provisioned, error) {
	var r wire.Provisioned
	if err := c.call(&p, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// DestroyCard deletes a card (administrators only).
func (c *Client) DestroyCard(serial string) error {
	return c.call(&wire.DestroyCard{Serial: serial}, nil)
}

// Status returns the service's state (administrators only).
func (c *Client) Status() (*wire.ServiceStatus, error) {
	var r wire.ServiceStatus
	if err := c.call(&wire.GetStatus{}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// errNoKey reports a Signer for a key the card does not show.
var errNoKey = errors.New("tpmcard: no such key on the card")

// WaitEvent waits up to timeout (0: not at all) for the next card event
// after the ones this connection was told of, and returns it; no event in
// time is a wire.Timeout error. It holds the connection while it waits: a
// program that also signs should wait on a connection of its own.
func (c *Client) WaitEvent(timeout time.Duration) (*wire.Event, error) {
	var r wire.Event
	if err := c.call(&wire.WaitEvent{TimeoutMillis: int(timeout / time.Millisecond)}, &r); err != nil {
		return nil, err
	}
	return &r, nil
}
