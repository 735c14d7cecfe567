package relay

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"strings"
	"unicode"
)

// tokens are the callers the relay knows: a name (for the audit) and the
// SHA-256 of its bearer token, compared in constant time with every one.
type tokens struct {
	names  []string
	hashes [][sha256.Size]byte
	scopes []scope
}

// scope is what a token may use: /v1/command, /v1/alertmanager, or both.
type scope struct{ command, alertmanager bool }

func (s scope) allows(kind string) bool {
	return kind == "command" && s.command || kind == "alertmanager" && s.alertmanager
}

// parseScope reads a token line's third word: "command", "alertmanager"
// or "command,alertmanager"; none is both.
func parseScope(s string) (scope, error) {
	if s == "" {
		return scope{true, true}, nil
	}
	var sc scope
	for _, p := range strings.Split(s, ",") {
		switch strings.TrimSpace(p) {
		case "command":
			sc.command = true
		case "alertmanager":
			sc.alertmanager = true
		default:
			return scope{}, fmt.Errorf("scope %q: command, alertmanager or both (command,alertmanager)", p)
		}
	}
	return sc, nil
}

// minTokenLen is the shortest token accepted: 128 bits in hex.
const minTokenLen = 32

// loadTokens reads a tokens file: one "NAME TOKEN [SCOPE]" a line (a colon
// also separates name and token; SCOPE is command, alertmanager, or both,
// the default), # comments and blank lines ignored. Names are unique words;
// tokens at least minTokenLen printable characters, each used once. A file
// anyone but its owner may read is refused.
func loadTokens(path string) (*tokens, error) {
	// The checks and the read are of one open file: replacing it in
	// between changes nothing. A symbolic link is followed, and what it
	// leads to is checked; a FIFO is refused, not waited on (openFlags).
	f, err := os.OpenFile(path, os.O_RDONLY|openFlags, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is no regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s is mode %04o: the tokens must be readable by their owner alone (chmod 600)", path, fi.Mode().Perm())
	}
	if uid, ok := fileOwner(fi); ok && !ownerTrusted(uid) {
		return nil, fmt.Errorf("%s belongs to uid %d: the tokens must belong to the agent's user (uid %d) or root, or that user could give itself a token", path, uid, os.Geteuid())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxTokensFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxTokensFile {
		return nil, fmt.Errorf("%s is over %d bytes: no tokens file is", path, maxTokensFile)
	}
	return parseTokens(b)
}

// PackageUser is the user the packages run the agent as.
const PackageUser = "pmta-agent"

// ownerTrusted says whether the tokens may belong to uid: root, the user
// reading them — and, for root (check-config run by an administrator
// before the service starts), the packages' user, whose file it is.
func ownerTrusted(uid int) bool {
	euid := os.Geteuid()
	if uid == 0 || uid == euid {
		return true
	}
	if euid != 0 {
		return false
	}
	u, err := lookupUser(PackageUser)
	return err == nil && u.Uid == strconv.Itoa(uid)
}

// lookupUser is user.Lookup; tests replace it.
var lookupUser = user.Lookup

// maxTokensFile bounds the tokens file read.
const maxTokensFile = 1 << 20

func parseTokens(b []byte) (*tokens, error) {
	t := &tokens{}
	seen := map[string]bool{}
	var errs []error
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, tok, ok := strings.Cut(line, " ")
		if c, t2, ok2 := strings.Cut(line, ":"); ok2 && (!ok || len(c) < len(name)) {
			name, tok, ok = c, t2, true
		}
		name, tok = strings.TrimSpace(name), strings.TrimSpace(tok)
		var scopeWord string
		if f := strings.Fields(tok); len(f) == 2 {
			tok, scopeWord = f[0], f[1]
		}
		sc, scErr := parseScope(scopeWord)
		switch {
		case scErr != nil:
			errs = append(errs, fmt.Errorf("line %d: %w", n, scErr))
			continue
		case !ok || name == "" || tok == "":
			errs = append(errs, fmt.Errorf("line %d: want NAME TOKEN", n))
			continue
		case !validName(name):
			errs = append(errs, fmt.Errorf("line %d: name %q: letters, digits, - _ . only", n, name))
			continue
		case seen[name]:
			errs = append(errs, fmt.Errorf("line %d: name %q twice", n, name))
			continue
		case len(tok) < minTokenLen || strings.IndexFunc(tok, func(r rune) bool { return !unicode.IsPrint(r) || r == ' ' }) >= 0:
			// The token itself is never said.
			errs = append(errs, fmt.Errorf("line %d: the token of %q must be at least %d printable characters without spaces", n, name, minTokenLen))
			continue
		}
		h := sha256.Sum256([]byte(tok))
		for i, other := range t.hashes {
			if other == h {
				errs = append(errs, fmt.Errorf("line %d: %q has the token of %q: each caller its own", n, name, t.names[i]))
			}
		}
		seen[name] = true
		t.names, t.hashes, t.scopes = append(t.names, name), append(t.hashes, h), append(t.scopes, sc)
	}
	if len(t.names) == 0 && len(errs) == 0 {
		errs = append(errs, errors.New("no tokens"))
	}
	return t, errors.Join(errs...)
}

func validName(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != "" && len(s) <= 64
}

// scopeOf returns what the token named name may use.
func (t *tokens) scopeOf(name string) scope {
	for i, n := range t.names {
		if n == name {
			return t.scopes[i]
		}
	}
	return scope{}
}

// match returns the name whose token tok is. Every token is compared, in
// constant time over digests of equal length, so that neither which one
// matched nor how much of one did shows in the time taken.
func (t *tokens) match(tok string) (string, bool) {
	h := sha256.Sum256([]byte(tok))
	found := -1
	for i := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], t.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 || tok == "" {
		return "", false
	}
	return t.names[found], true
}
