package pop3

import (
	"bytes"
	"sort"

	"strings"

	"github.com/pop3svc/pop3svc/session"
)

// LANG (RFC 6856 section 3): the human-readable text of every +OK and
// -ERR line can be had in another language. The replies are made in
// English; localize translates the first line of a reply through the
// catalog of the language the client chose. A catalog key is the English
// text with each run of digits written %d (the numbers are put back in
// order); a key starting with "* " matches any text ending in the rest
// (the replies that carry the configured greeting). Response codes in
// brackets are kept as they are.

// languages are the languages LANG offers, by RFC 5646 tag, with their
// own names.
var languages = map[string]string{
	"en": "English",
	"fr": "Français",
}

// catalogs translate English reply texts; English has none.
var catalogs = map[string]map[string]string{
	"fr": {
		"send PASS":                                                "envoyez PASS",
		"maildrop has %d messages (%d octets)":                     "la boîte contient %d messages (%d octets)",
		"%d messages (%d octets)":                                  "%d messages (%d octets)",
		"message %d deleted":                                       "message %d supprimé",
		"%d octets":                                                "%d octets",
		"top of message follows":                                   "début du message",
		"capability list follows":                                  "liste des capacités",
		"list of SASL mechanisms follows":                          "liste des mécanismes SASL",
		"Language listing follows":                                 "liste des langues",
		"Language changed to français":                             "Langue changée : français",
		"UTF%d enabled":                                            "UTF%d activé", // the 8 is a number to translate
		"Begin TLS negotiation":                                    "Début de la négociation TLS",
		"* signing off":                                            "déconnexion",
		"* signing off (%d messages left)":                         "déconnexion (%d messages restants)",
		"invalid user name or password":                            "nom d'utilisateur ou mot de passe incorrect",
		"plaintext authentication requires TLS":                    "l'authentification en clair exige TLS",
		"too soon after the last login, try again later":           "trop tôt après la dernière connexion, réessayez plus tard",
		"mailbox is in use by another session":                     "la boîte est utilisée par une autre session",
		"mailbox lock lost to another session; no message deleted": "verrou de la boîte perdu au profit d'une autre session ; aucun message supprimé",
		"mailbox is locked by the administrator":                   "la boîte est verrouillée par l'administrateur",
		"temporary server failure, try again later":                "panne temporaire du serveur, réessayez plus tard",
		"authentication service unavailable, try again later":      "service d'authentification indisponible, réessayez plus tard",
		"too many logins in progress, try again later":             "trop de connexions en cours, réessayez plus tard",
		"some deleted messages not removed":                        "certains messages supprimés n'ont pas été effacés",
		"internal error, closing connection":                       "erreur interne, fermeture de la connexion",
		"no such message":                                          "message inexistant",
		"unknown command":                                          "commande inconnue",
		"command not valid in this state":                          "commande non valide dans cet état",
		"syntax error":                                             "erreur de syntaxe",
		"too many bad commands, closing connection":                "trop de commandes erronées, fermeture de la connexion",
		"line too long":                                            "ligne trop longue",
		"USER first":                                               "USER d'abord",
		"APOP not available":                                       "APOP indisponible",
		"unsupported authentication mechanism":                     "mécanisme d'authentification non pris en charge",
		"authentication cancelled":                                 "authentification annulée",
		"authentication exchange failed: invalid response":         "échec de l'échange d'authentification : réponse invalide",
		"STLS not available":                                       "STLS indisponible",
		"session is over":                                          "la session est terminée",
		"no such language":                                         "langue inconnue",
		"message already deleted":                                  "message déjà supprimé",
	},
}

// langCmd answers LANG (RFC 6856 section 3): without an argument the
// languages offered, with a tag (or "*", the default) a change of language.
func (s *Session) langCmd(arg string) session.Reply {
	arg = strings.TrimSpace(arg)
	if arg == "" {
		tags := make([]string, 0, len(languages))
		for t := range languages {
			tags = append(tags, t)
		}
		sort.Strings(tags)
		var b bytes.Buffer
		b.WriteString(okPrefix + " Language listing follows\r\n")
		for _, t := range tags {
			b.WriteString(t + " " + languages[t] + "\r\n")
		}
		b.WriteString(".\r\n")
		return session.Reply{Out: b.Bytes()}
	}
	if strings.ContainsRune(arg, ' ') {
		return s.bad(errSyntax)
	}
	tag := strings.ToLower(arg)
	if tag == "*" {
		tag = "en"
	}
	if _, ok := languages[tag]; !ok {
		// A subtag of an offered language takes it (fr-CA: fr).
		base, _, _ := strings.Cut(tag, "-")
		if _, ok := languages[base]; !ok {
			return errorReply(errNoLanguage)
		}
		tag = base
	}
	s.lang = tag
	return line(okPrefix + " " + tag + " Language changed to " + strings.ToLower(languages[tag]))
}

// localize translates the first line of r into the session's language.
func (s *Session) localize(r session.Reply) session.Reply {
	cat := catalogs[s.lang]
	if cat == nil {
		return r
	}
	if p := r.Pending; p != nil {
		// A login finished by the auth queue: its reply comes later.
		r.Pending = func(resume func(func() session.Reply)) {
			p(func(f func() session.Reply) {
				resume(func() session.Reply { return s.localize(f()) })
			})
		}
	}
	if len(r.Out) == 0 {
		return r
	}
	end := bytes.Index(r.Out, []byte("\r\n"))
	if end < 0 {
		return r
	}
	first := string(r.Out[:end])
	var prefix, text string
	switch {
	case strings.HasPrefix(first, okPrefix+" "):
		prefix, text = okPrefix+" ", first[len(okPrefix)+1:]
	case isErrLine(first):
		prefix, text = first[:len(first)-len(errText(first))], errText(first)
	default:
		return r
	}
	if strings.HasPrefix(text, "[") {
		if i := strings.Index(text, "] "); i > 0 {
			prefix, text = prefix+text[:i+2], text[i+2:]
		}
	}
	// A language tag before the text (the LANG reply) is kept.
	if tag, rest, ok := strings.Cut(text, " "); ok && languages[tag] != "" {
		prefix, text = prefix+tag+" ", rest
	}
	out, ok := translate(cat, text)
	if !ok {
		return r
	}
	b := make([]byte, 0, len(prefix)+len(out)+len(r.Out)-end)
	b = append(b, prefix...)
	b = append(b, out...)
	b = append(b, r.Out[end:]...)
	r.Out = b
	return r
}

// translate looks text up in cat (see the package comment on LANG).
func translate(cat map[string]string, text string) (string, bool) {
	var key strings.Builder
	var nums []string
	for i := 0; i < len(text); {
		if c := text[i]; c >= '0' && c <= '9' {
			j := i
			for j < len(text) && text[j] >= '0' && text[j] <= '9' {
				j++
			}
			nums = append(nums, text[i:j])
			key.WriteString("%d")
			i = j
			continue
		}
		key.WriteByte(text[i])
		i++
	}
	k := key.String()
	tr, ok := cat[k]
	head := ""
	if !ok {
		for ck, v := range cat {
			suffix, isSuffix := strings.CutPrefix(ck, "* ")
			if isSuffix && strings.HasSuffix(k, " "+suffix) {
				// The head (the configured greeting) stays as it is; its
				// numbers are not the message's.
				headKey := strings.TrimSuffix(k, " "+suffix)
				n := strings.Count(headKey, "%d")
				head = text[:len(text)-len(fill(suffix, nums[n:]))-1] + " "
				nums, tr, ok = nums[n:], v, true
				break
			}
		}
	}
	if !ok || strings.Count(tr, "%d") != len(nums) {
		return "", false
	}
	return head + fill(tr, nums), true
}

// fill puts nums in place of the %d of s, in order.
func fill(s string, nums []string) string {
	var b strings.Builder
	for _, n := range nums {
		i := strings.Index(s, "%d")
		if i < 0 {
			break
		}
		b.WriteString(s[:i])
		b.WriteString(n)
		s = s[i+2:]
	}
	b.WriteString(s)
	return b.String()
}

// utf8Cmd answers UTF8 (RFC 6856 section 2): the client accepts UTF-8 in
// replies and messages. Messages are served as they were delivered, in
// either case: the store keeps no downgraded copies.
func (s *Session) utf8Cmd(arg string) session.Reply {
	if arg != "" {
		return s.bad(errSyntax)
	}
	s.utf8 = true
	return line(okPrefix + " UTF8 enabled")
}
