package pg

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/shared/config"
)

// pgx masks passwords in its parse errors on a best-effort basis, and a URL
// whose password holds an unencoded "@" or "/" parses with a piece of the
// password as the host or the database, which the connect error then
// quotes. So a DATABASE_URL that does not parse is described here from a
// copy with every password replaced, and one that parses into a host or
// database name no server has is refused before connecting.

func isURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// CheckURL says what is wrong with a DATABASE_URL, without connecting and
// without any part of its password, or returns nil: for a configuration
// loader to report it with the other problems.
func CheckURL(raw string) error {
	_, err := parse(raw)
	return err
}

// parse is pgxpool.ParseConfig with errors that show no part of a password.
func parse(raw string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, parseError(raw)
	}
	if p := misread(raw, cfg); p != "" {
		return nil, fmt.Errorf("%s: %s", config.RedactURL(raw), p)
	}
	return cfg, nil
}

// parseError describes why pgxpool.ParseConfig refused raw, without any
// part of a password: a URL's userinfo is checked on its own; anything else
// is pgx's own reason, found by parsing a copy without the passwords. A URL
// is named first, redacted.
func parseError(raw string) error {
	where := ""
	if isURL(raw) {
		where = config.RedactURL(raw) + ": "
		if p := config.URLProblem(raw); strings.Contains(p, "the user name") || strings.Contains(p, "the password") {
			return fmt.Errorf("%s%s", where, p)
		}
	}
	_, err := pgxpool.ParseConfig(withoutPasswords(raw))
	if err == nil {
		// The copy parses, so the passwords were the problem.
		if isURL(raw) {
			return fmt.Errorf(`%sthe user name or password cannot be read; percent-encode reserved characters ("/" as %%2F, "@" as %%40, "%%" as %%25, a space as %%20)`, where)
		}
		return fmt.Errorf(`%sthe password cannot be read; write it in quotes, password='...', with \' for a quote inside`, where)
	}
	// pgx's text is "cannot parse `<the copy, masked>`: <reason>"; only the
	// reason is kept, since the copy may still hold a piece of a password
	// that was not quoted.
	msg := err.Error()
	if i := strings.LastIndex(msg, "`: "); i >= 0 {
		msg = msg[i+3:]
	} else {
		msg = "cannot be parsed"
	}
	return config.HideSecrets(fmt.Errorf("%s%s", where, msg), config.URLSecrets(raw)...)
}

var (
	// queryPassword is a password or sslpassword URL query parameter.
	queryPassword = regexp.MustCompile(`(?i)([?&](?:ssl)?password=)[^&]*`)
	// kvPasswordKey starts a password or sslpassword in key=value form.
	kvPasswordKey = regexp.MustCompile(`\b(?:ssl)?password\s*=\s*`)
	// kvNextKey is where the next setting starts.
	kvNextKey = regexp.MustCompile(`\s+[A-Za-z_]+\s*=`)
)

// withoutPasswords is raw with the userinfo of a URL (all of it, up to the
// last "@") and every password parameter replaced.
func withoutPasswords(raw string) string {
	if !isURL(raw) {
		return withoutKVPasswords(raw)
	}
	scheme, rest, _ := strings.Cut(raw, "://")
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		rest = "xxxxx@" + rest[at+1:]
	}
	return scheme + "://" + queryPassword.ReplaceAllString(rest, "${1}xxxxx")
}

// withoutKVPasswords replaces each password value of key=value settings: a
// quoted one up to its closing quote (or the end, if there is none), an
// unquoted one up to the next setting, so that a password with an unquoted
// space is replaced whole.
func withoutKVPasswords(raw string) string {
	var b strings.Builder
	for {
		loc := kvPasswordKey.FindStringIndex(raw)
		if loc == nil {
			b.WriteString(raw)
			return b.String()
		}
		b.WriteString(raw[:loc[1]])
		b.WriteString("xxxxx")
		raw = raw[loc[1]:]
		end := len(raw)
		if strings.HasPrefix(raw, "'") {
			for i := 1; i < len(raw); i++ {
				if raw[i] == '\\' {
					i++
				} else if raw[i] == '\'' {
					end = i + 1
					break
				}
			}
		} else if next := kvNextKey.FindStringIndex(raw); next != nil {
			end = next[0]
		}
		raw = raw[end:]
	}
}

// misread says why a parsed URL is not what its author meant, or "": an
// "@" in a host or the database name is a piece of the userinfo, left there
// by a character of the password that was not percent-encoded (pgx ends
// the userinfo at the first "@", before any "/").
func misread(raw string, cfg *pgxpool.Config) string {
	if !isURL(raw) {
		return ""
	}
	bad := strings.Contains(cfg.ConnConfig.Host, "@") || strings.Contains(cfg.ConnConfig.Database, "@")
	for _, f := range cfg.ConnConfig.Fallbacks {
		bad = bad || strings.Contains(f.Host, "@")
	}
	if !bad {
		return ""
	}
	if p := config.URLProblem(raw); p != "" {
		return p
	}
	return `the user name or password contains "@", which must be percent-encoded (%40)`
}
