package client

import "github.com/tpmcard/tpmcard/service/wire"

// The requests of a PKCS#11 module (wire/objects.go): the service keeps
// the search and answers attributes and key generation the PKCS#11 way.

// FindObjectsInit starts a search in a session (C_FindObjectsInit).
func (c *Client) FindObjectsInit(session uint32, template ...wire.Attribute) error {
	return c.call(&wire.FindObjectsInit{Session: session, Template: template}, nil)
}

// FindObjectsNext returns up to max more handles of the session's search
// (C_FindObjects); none when all were returned.
func (c *Client) FindObjectsNext(session uint32, max int) ([]uint64, error) {
	var r wire.FoundObjects
	if err := c.call(&wire.FindObjectsNext{Session: session, Max: uint64(max)}, &r); err != nil {
		return nil, err
	}
	return r.Handles, nil
}

// FindObjectsFinal ends the session's search (C_FindObjectsFinal).
func (c *Client) FindObjectsFinal(session uint32) error {
	return c.call(&wire.FindObjectsFinal{Session: session}, nil)
}

// GetAttributeValue answers C_GetAttributeValue, one answer per query.
func (c *Client) GetAttributeValue(session uint32, object uint64, queries []wire.AttributeQuery) (wire.AttributeValue, error) {
	var r wire.AttributeValue
	err := c.call(&wire.GetAttributeValue{Session: session, Object: object, Attributes: queries}, &r)
	return r, err
}

// GenerateKeyPairTemplates is C_GenerateKeyPair: the service reads the
// mechanism and both templates.
func (c *Client) GenerateKeyPairTemplates(session uint32, mechanism uint64, param []byte, public, private []wire.Attribute) (pub, priv uint64, err error) {
	var r wire.GeneratedKeyPair
	err = c.call(&wire.GenerateKeyPairTemplates{Session: session, Mechanism: mechanism, Param: param, Public: public, Private: private}, &r)
	return r.Public, r.Private, err
}

// GetObjectSize is C_GetObjectSize: after its checks the service answers
// CK_UNAVAILABLE_INFORMATION (2^64-1).
func (c *Client) GetObjectSize(session uint32, object uint64) (uint64, error) {
	var r wire.ObjectSize
	err := c.call(&wire.GetObjectSize{Session: session, Object: object}, &r)
	return r.Size, err
}
