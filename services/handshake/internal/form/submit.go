package form

import (
	"encoding/json"
	"errors"
	"math/big"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// Errors maps a property name to the message shown next to its input; the
// empty name holds errors about the form as a whole.
type Errors map[string]string

func (e Errors) add(name, msg string) {
	if _, ok := e[name]; !ok {
		e[name] = msg
	}
}

// Number syntax as JSON has it, so a value goes to the vault unchanged.
var (
	integerRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	numberRE  = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)
)

// maxDigits bounds a submitted number's text.
const maxDigits = 64

// Read converts the submitted values to the schema's types and validates them
// against the schema. Empty fields are left out (so a required one is
// reported as missing); an unchecked checkbox is false. With no errors, the
// credentials are ready for the vault. Properties not in the schema are
// ignored.
func (f *Form) Read(v url.Values) (Credentials, Errors) {
	creds := Credentials{}
	errs := Errors{}
	for _, fd := range f.Fields {
		raw := v.Get(fd.Name)
		if fd.Type != "string" || !fd.Secret {
			raw = strings.TrimSpace(raw)
		}
		if fd.Kind == KindCheckbox {
			creds[fd.Name] = raw == "true" || raw == "on"
			continue
		}
		if raw == "" {
			continue
		}
		switch fd.Type {
		case "string":
			creds[fd.Name] = raw
		case "integer":
			if len(raw) > maxDigits || !integerRE.MatchString(raw) {
				errs.add(fd.Name, "Enter a whole number.")
				continue
			}
			creds[fd.Name] = json.Number(raw)
		case "number":
			if len(raw) > maxDigits || !numberRE.MatchString(raw) {
				errs.add(fd.Name, "Enter a number.")
				continue
			}
			creds[fd.Name] = json.Number(raw)
		case "boolean": // a boolean enum shown as a select
			creds[fd.Name] = raw == "true"
		}
	}
	// Validate even after a conversion error, so every field's problem shows
	// at once; a field that did not convert keeps its conversion message.
	err := f.schema.Validate(map[string]any(creds))
	var ve *jsonschema.ValidationError
	switch {
	case err == nil && len(errs) == 0:
		return creds, nil
	case err == nil:
	case errors.As(err, &ve):
		f.collect(ve, errs)
	default:
		errs.add("", "The values could not be checked.")
	}
	if len(errs) == 0 {
		errs.add("", "The values do not match what this service expects.")
	}
	return nil, errs
}

var printer = message.NewPrinter(language.English)

var typeWords = map[string]string{"string": "text", "integer": "a whole number", "number": "a number", "boolean": "yes or no",
	"null": "nothing", "object": "an object", "array": "a list"}

// collect walks the validation error tree and maps each leaf to the
// property it is about (the first segment of its instance location).
func (f *Form) collect(ve *jsonschema.ValidationError, errs Errors) {
	if len(ve.Causes) > 0 {
		for _, c := range ve.Causes {
			f.collect(c, errs)
		}
		return
	}
	if r, ok := ve.ErrorKind.(*kind.Required); ok && len(ve.InstanceLocation) == 0 {
		for _, name := range r.Missing {
			if f.field(name) != nil {
				errs.add(name, "This field is required.")
			} else {
				errs.add("", "A value this service needs is missing.")
			}
		}
		return
	}
	if len(ve.InstanceLocation) == 0 {
		errs.add("", "The values do not match what this service expects: "+f.safeMessage(nil, ve.ErrorKind))
		return
	}
	name := ve.InstanceLocation[0]
	fd := f.field(name)
	if fd == nil {
		errs.add("", "The values do not match what this service expects.")
		return
	}
	errs.add(name, f.safeMessage(fd, ve.ErrorKind))
}

// safeMessage says what is wrong in words for a person. It never repeats a
// secret field's value; the library's own wording is used only for fields
// that are not secret.
func (f *Form) safeMessage(fd *Field, k jsonschema.ErrorKind) string {
	switch k := k.(type) {
	case *kind.MinLength:
		return printer.Sprintf("Enter at least %d characters.", k.Want)
	case *kind.MaxLength:
		return printer.Sprintf("Enter at most %d characters.", k.Want)
	case *kind.Pattern:
		return "This value does not have the expected format."
	case *kind.Format:
		return "Enter a valid " + k.Want + "."
	case *kind.Minimum:
		return "Enter at least " + ratText(k.Want) + "."
	case *kind.Maximum:
		return "Enter at most " + ratText(k.Want) + "."
	case *kind.ExclusiveMinimum:
		return "Enter more than " + ratText(k.Want) + "."
	case *kind.ExclusiveMaximum:
		return "Enter less than " + ratText(k.Want) + "."
	case *kind.MultipleOf:
		return "Enter a multiple of " + ratText(k.Want) + "."
	case *kind.Enum, *kind.Const:
		return "Choose one of the allowed values."
	case *kind.Type:
		words := make([]string, 0, len(k.Want))
		for _, w := range k.Want {
			words = append(words, typeWords[w])
		}
		return "Enter " + strings.Join(words, " or ") + "."
	}
	if fd == nil || fd.Secret {
		return "This value is not valid."
	}
	msg := k.LocalizedString(printer)
	if msg == "" {
		return "This value is not valid."
	}
	return strings.ToUpper(msg[:1]) + msg[1:] + "."
}

func (f *Form) field(name string) *Field {
	for i := range f.Fields {
		if f.Fields[i].Name == name {
			return &f.Fields[i]
		}
	}
	return nil
}

// Kept returns the submitted values to show again after an error: the
// fields that are not secret, as typed. Secret fields come back empty.
func (f *Form) Kept(v url.Values) map[string]string {
	out := map[string]string{}
	for _, fd := range f.Fields {
		if fd.Secret {
			continue
		}
		if s := v.Get(fd.Name); s != "" {
			out[fd.Name] = s
		}
	}
	return out
}

// ratText shows a schema bound as a plain number.
func ratText(r *big.Rat) string {
	if r == nil {
		return "the limit"
	}
	if r.IsInt() {
		return r.Num().String()
	}
	f, _ := r.Float64()
	return strconv.FormatFloat(f, 'f', -1, 64)
}
