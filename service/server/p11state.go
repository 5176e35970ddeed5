package server

import (
	"github.com/tpmcard/tpmcard/service/p11"
	"github.com/tpmcard/tpmcard/service/wire"
)

// PKCS#11 v2.40 constants (pkcs11t.h) of the digest, verification and
// data-object requests that package p11 does not name.
const (
	ckoData = 0x0

	ckaApplication = 0x010
	ckaObjectID    = 0x012

	ckfDigest = 0x00000400
	ckfVerify = 0x00002000

	ckmSHA1RSAPKCS    = 0x0006
	ckmSHA1RSAPKCSPSS = 0x000e
	ckmECDSASHA1      = 0x1042

	ckrKeyIndigestible = 0x067
)

// p11State is what a connection keeps for the requests of digest.go,
// verify.go and dataobj.go: the operations of its sessions and its session
// objects. It lives in objects (objects.go) and, like the rest of a
// connection, is used by the serving goroutine only.
type p11State struct {
	digests  map[*session]*digestOp
	verifies map[*session]*verifyOp
	// initRV holds a DigestInit or VerifyInit failure the module has not
	// seen yet (it does not wait for those replies), per session and
	// request type.
	initRV map[*session]map[wire.Type]*wire.StatusError
	// data are the session data objects (CKA_TOKEN false), by their
	// objRef.id.
	data map[string]*sessionData
}

func (p *p11State) init() {
	p.digests = map[*session]*digestOp{}
	p.verifies = map[*session]*verifyOp{}
	p.initRV = map[*session]map[wire.Type]*wire.StatusError{}
	p.data = map[string]*sessionData{}
}

// p11 returns the connection's state, after forgetting what belonged to
// sessions closed since: their operations end and their session objects
// are destroyed with them (PKCS#11 v2.40 §4.4, §5.6).
func (c *conn) p11() *p11State {
	p := &c.objects.p11
	if p.digests == nil {
		p.init()
	}
	for s := range p.digests {
		if !c.hasSession(s) {
			delete(p.digests, s)
		}
	}
	for s := range p.verifies {
		if !c.hasSession(s) {
			delete(p.verifies, s)
		}
	}
	for s := range p.initRV {
		if !c.hasSession(s) {
			delete(p.initRV, s)
		}
	}
	for id, d := range p.data {
		if !c.hasSession(d.owner) {
			delete(p.data, id)
			if h, ok := c.objects.byRef[objRef{serial: d.owner.serial, id: id, kind: objSessionData}]; ok {
				c.objects.forget(h)
			}
		}
	}
	return p
}

// setInitRV remembers (or, with nil, forgets) the failure of a pipelined
// init request of type t.
func (p *p11State) setInitRV(s *session, t wire.Type, se *wire.StatusError) {
	if se == nil {
		delete(p.initRV[s], t)
		return
	}
	if p.initRV[s] == nil {
		p.initRV[s] = map[wire.Type]*wire.StatusError{}
	}
	p.initRV[s][t] = withRV(t, se)
}

// takeInitRV returns and forgets the failure setInitRV kept.
func (p *p11State) takeInitRV(s *session, t wire.Type) *wire.StatusError {
	se := p.initRV[s][t]
	delete(p.initRV[s], t)
	return se
}

// forget drops a handle from the registry (a destroyed session object).
func (o *objects) forget(h uint64) {
	if r, ok := o.byHandle[h]; ok {
		delete(o.byRef, r)
		delete(o.byHandle, h)
	}
}

// opSession resolves the session of a request that continues a pipelined
// operation: a failure of the init request t the module has not read yet
// is its answer when afterInit is set; either way it is forgotten.
func (c *conn) opSession(req, init wire.Type, id uint32, afterInit bool) (*session, *p11State, error) {
	if err := c.needUser(req); err != nil {
		return nil, nil, err
	}
	s, err := c.session(id)
	if err != nil {
		return nil, nil, err
	}
	p := c.p11()
	failed := p.takeInitRV(s, init)
	if afterInit && failed != nil {
		return nil, nil, failed
	}
	return s, p, nil
}

// lengthReply answers a step that only asks an output's length, or whose
// buffer is too short for it (PKCS#11 v2.40 §5.2), and nil for one that
// produces the output.
func lengthReply(n int, bufLen uint64, length bool) *wire.Digested {
	switch {
	case length:
		return &wire.Digested{Len: uint64(n)}
	case bufLen < uint64(n):
		return &wire.Digested{RV: p11.CKRBufferTooSmall, Len: uint64(n)}
	}
	return nil
}
