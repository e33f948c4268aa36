package access

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Tickets signs and checks session tickets. The key is cluster-wide (kept
// in the store's secret keyspace) so any node accepts any node's ticket.
type Tickets struct {
	key      []byte
	lifetime time.Duration
	now      func() time.Time
}

// NewTickets returns a signer with the given key and ticket lifetime.
func NewTickets(key []byte, lifetime time.Duration) *Tickets {
	return &Tickets{key: key, lifetime: lifetime, now: time.Now}
}

const ticketPrefix = "CORRAL1"

func (t *Tickets) mac(parts ...string) string {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte(strings.Join(parts, ":")))
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil))
}

// Issue returns a ticket and its CSRF token for user.
func (t *Tickets) Issue(user string) (ticket, csrf string, expires time.Time) {
	expires = t.now().Add(t.lifetime).Truncate(time.Second)
	u := base64.RawURLEncoding.EncodeToString([]byte(user))
	exp := strconv.FormatInt(expires.Unix(), 16)
	ticket = strings.Join([]string{ticketPrefix, u, exp, t.mac(ticketPrefix, u, exp)}, ":")
	return ticket, t.CSRF(ticket), expires
}

// CSRF derives the CSRF token bound to a ticket.
func (t *Tickets) CSRF(ticket string) string {
	h := hmac.New(sha256.New, t.key)
	h.Write([]byte("csrf:" + ticket))
	return hex.EncodeToString(h.Sum(nil)[:20])
}

// CheckCSRF compares a presented CSRF token in constant time.
func (t *Tickets) CheckCSRF(ticket, token string) bool {
	return hmac.Equal([]byte(t.CSRF(ticket)), []byte(token))
}

// Verify returns the user a valid, unexpired ticket was issued to.
func (t *Tickets) Verify(ticket string) (string, time.Time, error) {
	parts := strings.Split(ticket, ":")
	if len(parts) != 4 || parts[0] != ticketPrefix {
		return "", time.Time{}, fmt.Errorf("malformed ticket")
	}
	if !hmac.Equal([]byte(t.mac(parts[0], parts[1], parts[2])), []byte(parts[3])) {
		return "", time.Time{}, fmt.Errorf("bad ticket signature")
	}
	exp, err := strconv.ParseInt(parts[2], 16, 64)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("malformed ticket expiry")
	}
	expires := time.Unix(exp, 0)
	if !t.now().Before(expires) {
		return "", time.Time{}, fmt.Errorf("ticket expired")
	}
	user, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", time.Time{}, fmt.Errorf("malformed ticket user")
	}
	return string(user), expires, nil
}
