// Package pam authenticates host (Unix) accounts for corral's "pam" realm
// through the system's PAM stack, the way `login` or `sshd` would.
//
// Only pam_authenticate and pam_acct_mgmt are run: corral wants to know
// whether the password is right and the account may log in; it does not open
// a login session (no pam_open_session/pam_setcred), because a corral API
// ticket is not a Unix session and session modules (pam_systemd, pam_mkhomedir,
// ...) would have side effects on the host.
//
// # Service name and fallback
//
// The default PAM service is "corral". A package installing corral may ship
// /etc/pam.d/corral; when that file does not exist libpam falls back to
// /etc/pam.d/other. On Debian 12 (libpam-runtime 1.5.2) /etc/pam.d/other
// is
//
//	@include common-auth
//	@include common-account
//	@include common-password
//	@include common-session
//
// and common-auth/common-account run pam_unix, so without any extra
// configuration "corral" authenticates exactly like the system's other
// password logins (verified on the development machine). Distributions whose
// "other" is pam_deny (e.g. some hardened setups) need /etc/pam.d/corral.
//
// # Privileges
//
// pam_unix reads /etc/shadow, so corral must run as root for the usual
// Debian stack; unprivileged, pam_unix falls back to the unix_chkpwd helper,
// which only verifies the caller's own password.
//
// The real implementation needs cgo (libpam); a build without cgo compiles
// but reports PAM as unavailable.
package pam

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// DefaultService is the PAM service name used when a pam realm names none.
const DefaultService = "corral"

// pamDir is where libpam reads per-service configuration.
const pamDir = "/etc/pam.d"

var (
	// ErrAuth means the credentials were rejected: wrong password, unknown
	// or locked user, expired account, or a user name that is not a plain
	// account name. Callers answer these with a generic "login failed" and
	// must not reveal which of these it was. Errors that are not ErrAuth mean
	// PAM itself is broken or misconfigured (or the context ended) and should
	// be logged as server errors.
	ErrAuth = errors.New("authentication failed")

	// ErrInvalidUser is returned (together with ErrAuth) for user names that
	// are not plain account names; PAM is not consulted for them.
	ErrInvalidUser = errors.New("invalid user name")

	// ErrUnavailable is returned when corral was built without PAM support.
	ErrUnavailable = errors.New("PAM support not available")
)

// userNameRE accepts plain POSIX-ish account names as created by useradd
// (Debian's default NAME_REGEX, without the trailing '$' of Samba machine
// accounts). Anything else is rejected before reaching PAM: names with '@',
// '/', whitespace, control characters or a leading '-' have no business in
// a PAM conversation, and some modules interpolate the name into paths or
// LDAP/SQL queries.
var userNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_.-]{0,31}$`)

// serviceRE restricts service names to file names inside /etc/pam.d; libpam
// would otherwise happily be pointed at "../something".
var serviceRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// ValidUserName reports whether name is a plain account name that
// Authenticate is willing to pass to PAM.
func ValidUserName(name string) bool {
	return userNameRE.MatchString(name)
}

// checkArgs validates the inputs of Authenticate. Bad user names and
// passwords PAM cannot even represent count as failed logins (ErrAuth);
// a bad service name is a configuration error.
func checkArgs(service, user, password string) (string, error) {
	if service == "" {
		service = DefaultService
	}
	if !serviceRE.MatchString(service) {
		return "", fmt.Errorf("pam: invalid service name %q", service)
	}
	if !ValidUserName(user) {
		return "", fmt.Errorf("pam: %w: %w", ErrAuth, ErrInvalidUser)
	}
	// An empty password would let pam_unix's "nullok" accept accounts
	// without a password; a NUL byte would be silently truncated by the C
	// string conversion, so the checked password would differ from the given.
	if password == "" || strings.IndexByte(password, 0) >= 0 {
		return "", fmt.Errorf("pam: user %q: %w: unusable password", user, ErrAuth)
	}
	return service, nil
}
