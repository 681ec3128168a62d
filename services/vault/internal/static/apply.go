package static

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/nexus-broker/nexus/messages"
)

// emptySHA256 is the hex SHA-256 of an empty body (what SigV4 signs).
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// Apply adds creds (as Select returned them) to an outgoing request with an
// empty body, the way the Gateway applies them with st.
func Apply(ctx context.Context, req *http.Request, st messages.Strategy, creds map[string]any, now time.Time) error {
	setting := func(k string) string { s, _ := st.Config[k].(string); return s }
	field := func(k string) string { s, _ := creds[st.Field(k)].(string); return s }
	switch st.Type {
	case messages.StrategyHeader:
		req.Header.Set(setting("header"), setting("prefix")+field("field"))
	case messages.StrategyQueryParam:
		q := req.URL.Query()
		q.Set(setting("param"), field("field"))
		req.URL.RawQuery = q.Encode()
	case messages.StrategyBasicAuth:
		req.SetBasicAuth(field("username_field"), field("password_field"))
	case messages.StrategyHMACPayload:
		var h func() hash.Hash
		switch setting("algorithm") {
		case "sha256":
			h = sha256.New
		case "sha512":
			h = sha512.New
		default:
			return fmt.Errorf("hmac_payload: unsupported algorithm")
		}
		mac := hmac.New(h, []byte(field("field")))
		mac.Write(nil) // the empty body
		sum := mac.Sum(nil)
		sig := hex.EncodeToString(sum)
		if setting("encoding") == "base64" {
			sig = base64.StdEncoding.EncodeToString(sum)
		}
		req.Header.Set(setting("header"), setting("prefix")+sig)
	case messages.StrategyAWSSigV4:
		if setting("service") == "s3" {
			req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
		}
		cr := aws.Credentials{AccessKeyID: field("access_key_id_field"), SecretAccessKey: field("secret_access_key_field"),
			SessionToken: field("session_token_field")}
		if err := v4.NewSigner().SignHTTP(ctx, cr, req, emptySHA256, setting("service"), setting("region"), now.UTC()); err != nil {
			return fmt.Errorf("aws_sigv4: cannot sign the request")
		}
	default:
		return fmt.Errorf("strategy %s cannot be applied", st.Type)
	}
	return nil
}
