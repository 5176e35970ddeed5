// Package server is the tpmcard service's socket server: it accepts local
// connections on a unix socket, checks who is calling with the kernel's
// peer credentials, keeps each connection's PKCS#11 state (sessions, login,
// object handles) and answers the requests of package wire with a
// tpmcard.Manager.
//
// # Connections, sessions and login
//
// One connection is one PKCS#11 application (PKCS#11 v2.40 §5.4). Its
// first frame must be Hello. Sessions are numbers inside the connection.
// Login is per application and card: a CKU_USER login proves the PIN to the
// TPM (Manager.Login) and covers every session of the connection on that
// card. Logout, closing the connection's last session on the card, or
// closing the connection ends it. The Manager keeps one PIN proof per card
// for everyone; the server calls Manager.Logout only when no connection is
// logged in to the card any more. A connection that did not log in cannot
// sign, even while another one is logged in.
//
// A wrong or locked PIN ends every connection's login of the card, as a
// physical card drops its verified state after a failed VERIFY: sessions
// go back to the public state and the next Sign gets NotLoggedIn. A
// logged-in application re-proves the PIN at every signature, which resets
// the TPM's counter; without this, wrong guesses from another process
// between its signatures would never reach the limit. A wrong or locked
// PUK ends every SO login of the card in the same way.
//
// A CKU_SO login keeps the PUK for the connection (wiped at logout) so that
// InitPIN can unblock the card; the PUK is checked, and counted, by the TPM
// at that point, since no TPM command can check a PUK without spending it.
//
// # Who may do what
//
// Peers are identified by SO_PEERCRED and SO_PEERGROUPS (socket(7)) when
// the connection is accepted. uid 0 and members of Config.AdminGroup are
// administrators (provision, destroy cards, change owners, generate and
// delete keys, service status). Administrators, members of
// Config.CardGroup and, when no card group is set, everyone may use cards
// at all; each card then belongs to a user and optionally a group
// (tpmcard.Owner, set at provisioning, by default to the peer that asked,
// and by SetOwner), and only they and administrators see it in ListCards
// and WaitEvent, open sessions on it, log in, change or unblock its PIN,
// or start and answer an admin challenge. Anyone else gets CardNotFound,
// as for a card that does not exist. A card with no owner is for
// administrators only; Start warns about each. The socket itself is 0666 so
// that every decision, and every denial, goes through that check and the
// audit log.
//
// # Limits
//
// At most Config.MaxConns connections (DefaultMaxConns), an eighth of them
// kept for administrators, and Config.MaxConnsPerUser
// (DefaultMaxConnsPerUser) per non-admin uid: one user cannot take the
// slots others, or root, need. A connection that holds no session, so no
// login, is closed after Config.IdleTimeout (DefaultIdleTimeout) without a
// request; one with a session never is.
//
// # Audit
//
// The Logger gets a child logger per connection (conn id, uid, gid, pid,
// exe), one debug line per request (type, status, duration) and info or
// warn lines for logins, failed PIN and PUK tries with the tries left,
// lockouts, unblocks, PIN and PUK changes, provisioning, key generation and
// deletion, and denials. PINs and PUKs never reach it.
//
// The server runs on Linux; elsewhere Start reports that it is not
// supported yet.
package server
