//go:build cgo

package pam

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	gopam "github.com/msteinert/pam/v2"
)

// Authenticate checks user's password with PAM service (DefaultService when
// empty) by running pam_authenticate and then pam_acct_mgmt, so locked,
// expired or otherwise disabled accounts are refused even with the right
// password.
//
// The conversation answers every echo-off prompt with password, ignores
// informational and error messages (they are kept for the returned error),
// and fails on anything else (e.g. an echo-on prompt for a one-time code),
// because corral has no way to relay questions to the API client.
//
// Rejected credentials return an error wrapping ErrAuth (and the PAM error,
// e.g. gopam.ErrAuth or gopam.ErrAcctExpired); any other error means PAM is
// broken or misconfigured. User names that are not plain account names are
// rejected with ErrAuth+ErrInvalidUser before PAM is touched.
//
// libpam calls block and cannot be cancelled (pam_unix alone sleeps about
// two seconds after a failed attempt), so they run in their own goroutine.
// When ctx ends first Authenticate returns ctx's error immediately; the PAM
// transaction then still runs to completion in the background and its result
// is discarded.
func Authenticate(ctx context.Context, service, user, password string) error {
	service, err := checkArgs(service, user, password)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pam: authenticating %q: %w", user, context.Cause(ctx))
	}
	done := make(chan error, 1) // buffered: an abandoned run must not block
	go func() {
		// PAM modules may change per-thread state (fsuid/fsgid, signal
		// masks, thread-local errno handling in libraries). Locking without
		// unlocking makes the runtime discard the thread when the goroutine
		// ends, so such state never leaks into other goroutines.
		runtime.LockOSThread()
		done <- authenticate(service, user, password)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("pam: authenticating %q via service %q: %w (PAM call continues in background)",
			user, service, context.Cause(ctx))
	}
}

// authFailures are the PAM results that mean "these credentials may not log
// in" as opposed to "PAM could not decide".
var authFailures = []gopam.Error{
	gopam.ErrAuth,
	gopam.ErrUserUnknown,
	gopam.ErrPermDenied,
	gopam.ErrMaxtries,
	gopam.ErrAcctExpired,
	gopam.ErrNewAuthtokReqd,
	gopam.ErrAuthtokExpired,
	gopam.ErrCredInsufficient,
	gopam.ErrCredExpired,
}

// conversation answers PAM's questions for one non-interactive login.
type conversation struct {
	password   string
	unexpected string   // first prompt we refused, for the error message
	messages   []string // PAM_ERROR_MSG / PAM_TEXT_INFO texts, capped
}

const maxMessages = 4

func (c *conversation) RespondPAM(style gopam.Style, msg string) (string, error) {
	switch style {
	case gopam.PromptEchoOff:
		// Stacks without use_first_pass may ask for the same password
		// more than once (pam_unix then pam_krb5, for instance).
		return c.password, nil
	case gopam.ErrorMsg, gopam.TextInfo:
		if len(c.messages) < maxMessages {
			c.messages = append(c.messages, strings.TrimSpace(msg))
		}
		return "", nil
	default:
		if c.unexpected == "" {
			c.unexpected = fmt.Sprintf("style %d %q", style, msg)
		}
		return "", fmt.Errorf("unexpected PAM prompt %s", c.unexpected)
	}
}

// authenticate runs one PAM transaction synchronously.
func authenticate(service, user, password string) (err error) {
	conv := &conversation{password: password}
	tx, err := gopam.Start(service, user, conv)
	if err != nil {
		return fmt.Errorf("pam: starting transaction for service %q: %w", service, err)
	}
	defer func() {
		if endErr := tx.End(); endErr != nil && err == nil {
			err = fmt.Errorf("pam: ending transaction: %w", endErr)
		}
	}()

	// DisallowNullAuthtok overrides Debian's "nullok": an account without a
	// password must not log in to corral with an arbitrary password.
	const flags = gopam.Silent | gopam.DisallowNullAuthtok
	if err := tx.Authenticate(flags); err != nil {
		return classify("pam_authenticate", service, user, conv, err)
	}
	if err := tx.AcctMgmt(flags); err != nil {
		return classify("pam_acct_mgmt", service, user, conv, err)
	}
	// A module may rewrite PAM_USER (user mapping); corral would then
	// grant a session to a different name than the one it checked.
	if got, err := tx.GetItem(gopam.User); err != nil {
		return fmt.Errorf("pam: reading PAM_USER: %w", err)
	} else if got != user {
		return fmt.Errorf("pam: service %q changed user %q into %q; refusing", service, user, got)
	}
	return nil
}

// classify wraps a failed PAM step, adding ErrAuth for credential failures.
func classify(step, service, user string, conv *conversation, err error) error {
	detail := ""
	if len(conv.messages) > 0 {
		detail = " (PAM said: " + strings.Join(conv.messages, "; ") + ")"
	}
	var perr gopam.Error
	if errors.As(err, &perr) {
		for _, f := range authFailures {
			if perr == f {
				return fmt.Errorf("pam: %s for user %q (service %q): %w: %w%s",
					step, user, service, ErrAuth, err, detail)
			}
		}
		if perr == gopam.ErrConv && conv.unexpected != "" {
			return fmt.Errorf("pam: %s for user %q (service %q): %w: cannot answer %s non-interactively%s",
				step, user, service, err, conv.unexpected, detail)
		}
	}
	return fmt.Errorf("pam: %s for user %q (service %q): %w%s", step, user, service, err, detail)
}

// Available reports whether PAM can authenticate users with DefaultService
// on this host, and why (not). See CheckService.
func Available() (bool, string) {
	return CheckService(DefaultService)
}

// CheckService reports whether PAM can authenticate users with service, with
// a human-readable reason. It checks that /etc/pam.d exists, that either the
// service's own file or the "other" fallback exists, and that libpam (which
// the binary links against) can start and end a transaction for service,
// which makes libpam parse the configuration. It never authenticates anyone.
func CheckService(service string) (bool, string) {
	if !serviceRE.MatchString(service) {
		return false, fmt.Sprintf("invalid PAM service name %q", service)
	}
	fi, err := os.Stat(pamDir)
	if err != nil {
		return false, fmt.Sprintf("PAM configuration directory: %v", err)
	}
	if !fi.IsDir() {
		return false, pamDir + " is not a directory"
	}
	cfg := filepath.Join(pamDir, service)
	if _, err := os.Stat(cfg); err != nil {
		other := filepath.Join(pamDir, "other")
		if _, oerr := os.Stat(other); oerr != nil {
			return false, fmt.Sprintf("neither %s nor the fallback %s exists", cfg, other)
		}
		cfg = other + " (fallback, " + filepath.Join(pamDir, service) + " absent)"
	}

	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // see Authenticate: discard the thread afterwards
		tx, err := gopam.Start(service, "", gopam.ConversationFunc(
			func(gopam.Style, string) (string, error) {
				return "", errors.New("no conversation during availability check")
			}))
		if err != nil {
			ch <- err
			return
		}
		ch <- tx.End()
	}()
	if err := <-ch; err != nil {
		return false, fmt.Sprintf("libpam cannot start service %q: %v", service, err)
	}

	reason := "libpam loaded, service " + service + " configured by " + cfg
	if os.Geteuid() != 0 {
		reason += "; not running as root, so pam_unix can only verify the calling user's own password"
	}
	return true, reason
}
