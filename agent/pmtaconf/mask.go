package pmtaconf

import (
	"strings"
)

// Masked is what a secret is shown as. It is the same for every secret, so
// that nothing about the value (not even its length) leaks; a change to a
// secret still shows as a change ("http-api-key ***** → *****").
const Masked = "*****"

// secretWords mark a directive whose whole value is a secret, wherever the
// word appears in its name: http-api-key (the X-API-Key that gives admin
// access from any address), password (the <smtp-user> password, a
// <domain>'s auth-password for SMTP AUTH to a smart host), passwd and
// secret (spellings other versions and operators use), token and
// credential (webhook and relay credentials), private-key (key material
// written inline). Matching by word rather than by a list of names keeps a
// directive a future PowerMTA adds masked too; the cost is that a harmless
// directive with such a word in its name is masked as well.
var secretWords = []string{"api-key", "apikey", "password", "passwd", "secret", "token", "credential", "private-key"}

// IsSecret reports whether the whole value of the directive name is a
// secret: a name holding one of secretWords, or an "auth-" directive
// (auth-username and auth-password are the credentials a <domain> presents
// to a smart host; the user name is half of them). name is matched without
// regard to case, as PowerMTA matches directive names.
//
// dkim keys are not secrets by name: domain-key names a selector, a domain
// and the path of the key file, and a path says nothing about the key; key
// material itself (a PEM block) is masked wherever it appears, by MaskArgs.
func IsSecret(name string) bool {
	name = strings.ToLower(name)
	if strings.HasPrefix(name, "auth-") {
		return true
	}
	for _, w := range secretWords {
		if strings.Contains(name, w) {
			return true
		}
	}
	return false
}

// MaskArgs returns args with the secrets inside otherwise plain values
// masked, and whether it masked anything:
//   - key material: an argument holding "-----BEGIN" (a PEM block) is
//     masked whole;
//   - credentials in a URL: "https://user:pass@host/…" keeps the user and
//     masks the password (an http-webhook-url, a pipe's target);
//   - a secret option of a program an <acct-file |…> or a pipe runs:
//     "--password=x", "password=x" and "--password x" (the option name
//     matched as IsSecret matches directive names) mask x.
//
// args is not changed.
func MaskArgs(args []string) ([]string, bool) {
	var out []string
	masked := false
	set := func(i int, v string) {
		if out == nil {
			out = append([]string(nil), args...)
		}
		out[i], masked = v, true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if name, _, ok := strings.Cut(a, "="); ok && isSecretOption(name) {
			set(i, name+"="+Masked)
			continue
		}
		if strings.HasPrefix(a, "-") && isSecretOption(a) && i+1 < len(args) {
			set(i+1, Masked)
			i++ // the option's value is masked whole
			continue
		}
		switch {
		case strings.Contains(a, "-----BEGIN"):
			set(i, Masked)
		case strings.Contains(a, "://"):
			if m, ok := maskURLPassword(a); ok {
				set(i, m)
			}
		}
	}
	if !masked {
		return args, false
	}
	return out, true
}

// isSecretOption reports whether a program option ("--password",
// "api_key") names a secret.
func isSecretOption(s string) bool {
	s = strings.TrimLeft(s, "-")
	if s == "" || strings.ContainsAny(s, "/:@ ") {
		return false
	}
	return IsSecret(strings.ReplaceAll(s, "_", "-"))
}

// maskURLPassword masks the password of every "scheme://user:pass@" in s.
func maskURLPassword(s string) (string, bool) {
	var b strings.Builder
	changed := false
	parts, rest := userinfos(s)
	for _, p := range parts {
		b.WriteString(p.before)
		if user, _, ok := strings.Cut(p.userinfo, ":"); ok {
			b.WriteString(user + ":" + Masked)
			changed = true
		} else {
			b.WriteString(p.userinfo)
		}
	}
	b.WriteString(rest)
	return b.String(), changed
}

// urlPart is the text before a URL's user info (from the end of the one
// before, "scheme://" included) and the user info ("user:pass").
type urlPart struct{ before, userinfo string }

// userinfos splits s at the user info of every "scheme://user[:pass]@": the
// parts, and the text after the last.
func userinfos(s string) (parts []urlPart, rest string) {
	var pending strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			break
		}
		pending.WriteString(s[:i+3])
		s = s[i+3:]
		end := strings.IndexAny(s, "/?# ")
		if end < 0 {
			end = len(s)
		}
		at := strings.LastIndex(s[:end], "@")
		if at < 0 {
			continue
		}
		parts = append(parts, urlPart{before: pending.String(), userinfo: s[:at]})
		pending.Reset()
		s = s[at:]
	}
	pending.WriteString(s)
	return parts, pending.String()
}

// Secrets returns every secret value written in the configuration: the
// values of the directives IsSecret names and the arguments MaskArgs would
// mask, in the order written (a value of several words as one string). The
// agent scrubs them from error texts (agent/redact), since a parse error may
// quote the line it failed on; how short a secret may be before scrubbing it
// garbles every message is the caller's decision.
func Secrets(root *Block) []string {
	var out []string
	var walk func(b *Block)
	add := func(args []string) {
		masked, ok := MaskArgs(args)
		if !ok {
			return
		}
		for i, a := range args {
			m := masked[i]
			switch {
			case m == a:
			case m == Masked:
				out = append(out, a)
			case strings.HasSuffix(m, "="+Masked) && strings.HasPrefix(a, strings.TrimSuffix(m, Masked)):
				out = append(out, strings.TrimPrefix(a, strings.TrimSuffix(m, Masked)))
			default:
				out = append(out, urlPasswords(a)...)
			}
		}
	}
	walk = func(b *Block) {
		add(b.Args)
		for _, d := range b.Directives {
			if IsSecret(d.Name) {
				if v := d.Value(); v != "" {
					out = append(out, v)
				}
				continue
			}
			add(d.Args)
		}
		for _, c := range b.Blocks {
			walk(c)
		}
	}
	if root != nil {
		walk(root)
	}
	return out
}

// urlPasswords returns the passwords of the "scheme://user:pass@" in s.
func urlPasswords(s string) []string {
	var out []string
	parts, _ := userinfos(s)
	for _, p := range parts {
		if _, pass, ok := strings.Cut(p.userinfo, ":"); ok && pass != "" {
			out = append(out, pass)
		}
	}
	return out
}
