package pam

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// randomHex returns n random bytes as hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

// run executes a command with an argument list (never a shell), optionally
// feeding stdin, and fails the test with its output on error.
func run(t *testing.T, stdin string, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

// requireAccountTools skips the test unless it may create host accounts.
func requireAccountTools(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: creating a host account for PAM needs root")
	}
	for _, tool := range []string{"useradd", "chpasswd", "usermod", "userdel"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("skipping: %s not found in PATH: %v", tool, err)
		}
	}
	if ok, reason := Available(); !ok {
		t.Skipf("skipping: PAM not available: %s", reason)
	}
}

// newAccount creates a real local account with a random name and password,
// applies extra usermod arguments (e.g. -L to lock it), and removes the
// account and its home directory when the test ends.
func newAccount(t *testing.T, usermodArgs ...string) (user, password string) {
	t.Helper()
	user = "corraltest" + randomHex(t, 4)
	password = "Corral-" + randomHex(t, 12)
	run(t, "", "useradd", "--create-home", "--shell", "/usr/sbin/nologin",
		"--comment", "corral PAM test account", user)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, "userdel", "-r", user).CombinedOutput(); err != nil {
			t.Errorf("userdel -r %s: %v\n%s", user, err, out)
		}
	})
	run(t, user+":"+password+"\n", "chpasswd")
	if len(usermodArgs) > 0 {
		run(t, "", "usermod", append(usermodArgs, user)...)
	}
	return user, password
}

func TestAvailable(t *testing.T) {
	ok, reason := Available()
	t.Logf("Available() = %v, %q", ok, reason)
	if reason == "" {
		t.Error("Available() gave no reason")
	}
	if _, err := os.Stat(pamDir + "/" + DefaultService); errors.Is(err, os.ErrNotExist) && ok {
		if !strings.Contains(reason, "fallback") {
			t.Errorf("reason %q does not mention the /etc/pam.d/other fallback", reason)
		}
	}
}

func TestCheckServiceRejectsPathNames(t *testing.T) {
	for _, svc := range []string{"../shadow", "a/b", "", ".hidden"} {
		if ok, reason := CheckService(svc); ok {
			t.Errorf("CheckService(%q) = true (%s), want false", svc, reason)
		}
	}
}

func TestAuthenticate(t *testing.T) {
	requireAccountTools(t)

	good, goodPW := newAccount(t)
	locked, lockedPW := newAccount(t, "-L")
	expired, expiredPW := newAccount(t, "--expiredate", "1970-01-02")

	tests := []struct {
		name     string
		user     string
		password string
		wantErr  bool
		wantAuth bool // error must wrap ErrAuth
	}{
		{name: "good password", user: good, password: goodPW},
		{name: "wrong password", user: good, password: goodPW + "x", wantErr: true, wantAuth: true},
		{name: "password prefix", user: good, password: goodPW[:len(goodPW)-1], wantErr: true, wantAuth: true},
		{name: "unknown user", user: "corralnouser" + randomHex(t, 4), password: goodPW, wantErr: true, wantAuth: true},
		{name: "locked account right password", user: locked, password: lockedPW, wantErr: true, wantAuth: true},
		{name: "expired account right password", user: expired, password: expiredPW, wantErr: true, wantAuth: true},
		{name: "empty password", user: good, password: "", wantErr: true, wantAuth: true},
		{name: "NUL in password", user: good, password: goodPW + "\x00junk", wantErr: true, wantAuth: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Parallel on purpose: the API server authenticates
			// concurrently, and pam_unix's ~2 s failure delay would
			// otherwise make this test slow.
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := Authenticate(ctx, "", tc.user, tc.password)
			t.Logf("Authenticate(%q) = %v", tc.user, err)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, want error: %v", err, tc.wantErr)
			}
			if tc.wantAuth && !errors.Is(err, ErrAuth) {
				t.Errorf("error %v does not wrap ErrAuth", err)
			}
		})
	}
}

func TestAuthenticateInvalidNames(t *testing.T) {
	tests := []struct {
		name string
		user string
	}{
		{"empty", ""},
		{"realm suffix", "root@pam"},
		{"upper case", "Root"},
		{"leading dash", "-root"},
		{"leading digit", "1root"},
		{"space", "ro ot"},
		{"path", "../root"},
		{"slash", "a/b"},
		{"newline", "root\n"},
		{"NUL", "root\x00"},
		{"non-ASCII", "rööt"},
		{"too long", "a" + strings.Repeat("b", 32)},
		{"machine account", "host$"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Authenticate(context.Background(), "", tc.user, "secret")
			if !errors.Is(err, ErrInvalidUser) || !errors.Is(err, ErrAuth) {
				t.Errorf("Authenticate(%q) = %v, want ErrInvalidUser and ErrAuth", tc.user, err)
			}
		})
	}
	for _, ok := range []string{"root", "_apt", "www-data", "a.b", "corraltest0123abcd", "a" + strings.Repeat("b", 31)} {
		if !ValidUserName(ok) {
			t.Errorf("ValidUserName(%q) = false, want true", ok)
		}
	}
}

func TestAuthenticateInvalidService(t *testing.T) {
	err := Authenticate(context.Background(), "../../etc/passwd", "root", "secret")
	if err == nil || errors.Is(err, ErrAuth) {
		t.Errorf("Authenticate with bad service = %v, want a non-ErrAuth error", err)
	}
}

func TestAuthenticateContext(t *testing.T) {
	requireAccountTools(t)
	user, pw := newAccount(t)

	t.Run("already cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Authenticate(ctx, "", user, pw); !errors.Is(err, context.Canceled) {
			t.Errorf("error = %v, want context.Canceled", err)
		}
	})
	t.Run("deadline during failure delay", func(t *testing.T) {
		// A wrong password makes pam_unix sleep ~2 s; Authenticate must
		// return at the deadline instead.
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := Authenticate(ctx, "", user, pw+"wrong")
		elapsed := time.Since(start)
		t.Logf("returned after %v: %v", elapsed, err)
		if elapsed > 1500*time.Millisecond {
			t.Errorf("took %v, want about the 200ms deadline", elapsed)
		}
		// On a very fast failure path PAM may still win the race.
		if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, ErrAuth) {
			t.Errorf("error = %v, want DeadlineExceeded (or ErrAuth)", err)
		}
	})
}
