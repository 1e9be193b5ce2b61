package main

// The random stand-in's one real resource. A `pulumi up` of meshlab (the real-apply tier) needs
// Grafana's admin password and the cluster token to exist, so the random stand-in creates
// random:index/randomPassword:RandomPassword as pulumi-random documents it (terraform-provider-random's
// random_password): the same inputs and defaults, the same outputs, every input change a replacement.
// It is written from those documents and the provider protocol, not from the real provider's code.

import (
	"crypto/rand"
	"fmt"
	"math"
	"math/big"
	"sort"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/sig"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	randomPasswordType = "random:index/randomPassword:RandomPassword"
	// randomPasswordID: the real provider gives every password this same id; the password lives in
	// the state only.
	randomPasswordID = "none"

	upperChars          = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lowerChars          = "abcdefghijklmnopqrstuvwxyz"
	numericChars        = "0123456789"
	defaultSpecialChars = "!@#$%&*()-_=+[]{}<>:?"

	// bcrypt reads at most 72 bytes; the real provider hashes the first 72 bytes of a longer result
	// (terraform-provider-random#397) rather than fail.
	bcryptMaxBytes = 72
	// maxPasswordLength bounds what a typo can cost in memory. The real provider has no limit, and
	// nothing needs a password this long.
	maxPasswordLength = 1 << 16
)

// passwordInputs: each input as the SDKs send it, with the default the real provider documents
// (nil: none, the output stays absent).
var passwordInputs = []struct {
	key      string
	fallback *structpb.Value
}{
	{"length", nil},
	{"special", structpb.NewBoolValue(true)},
	{"upper", structpb.NewBoolValue(true)},
	{"lower", structpb.NewBoolValue(true)},
	{"numeric", structpb.NewBoolValue(true)},
	{"number", structpb.NewBoolValue(true)}, // deprecated name of numeric
	{"minUpper", structpb.NewNumberValue(0)},
	{"minLower", structpb.NewNumberValue(0)},
	{"minNumeric", structpb.NewNumberValue(0)},
	{"minSpecial", structpb.NewNumberValue(0)},
	{"overrideSpecial", nil},
	{"keepers", nil},
}

// makesPasswords: only the random stand-in creates anything, and only RandomPasswords.
func (p *standIn) makesPasswords(typ string) bool {
	return p.name == "random" && typ == randomPasswordType
}

// passwordSpec is a RandomPassword's inputs read, with the documented defaults filled in.
type passwordSpec struct {
	length                                     int
	upper, lower, numeric, special             bool
	minUpper, minLower, minNumeric, minSpecial int
	specialChars                               string
}

type charClass struct {
	chars   string
	enabled bool
	min     int
}

func (s passwordSpec) classes() []charClass {
	return []charClass{
		{upperChars, s.upper, s.minUpper},
		{lowerChars, s.lower, s.minLower},
		{numericChars, s.numeric, s.minNumeric},
		{s.specialChars, s.special, s.minSpecial},
	}
}

// inputProblem: an input the stand-in refuses, named as the SDKs send it ("" for a combination).
type inputProblem struct{ property, reason string }

func joinProblems(problems []inputProblem) string {
	reasons := make([]string, len(problems))
	for i, pr := range problems {
		reasons[i] = pr.reason
	}
	return strings.Join(reasons, "; ")
}

// inputReader reads inputs with their secret wrappers removed, collecting every problem so that
// Check can report them all at once.
type inputReader struct {
	fields   map[string]*structpb.Value
	problems []inputProblem
}

func (r *inputReader) fail(property, format string, args ...any) {
	r.problems = append(r.problems, inputProblem{property, fmt.Sprintf(format, args...)})
}

// value: the input, unwrapped; nil when absent or null (both mean "use the default").
func (r *inputReader) value(key string) *structpb.Value {
	v := withoutSecrets(r.fields[key])
	if isNull(v) {
		return nil
	}
	if sig.IsUnknown(v.GetStringValue()) {
		r.fail(key, "%s is not known", key)
		return nil
	}
	return v
}

func describe(v *structpb.Value) string {
	return fmt.Sprintf("%#v", v.AsInterface())
}

// boolean returns the input and whether it was given.
func (r *inputReader) boolean(key string, fallback bool) (bool, bool) {
	v := r.value(key)
	if v == nil {
		return fallback, false
	}
	b, ok := v.GetKind().(*structpb.Value_BoolValue)
	if !ok {
		r.fail(key, "%s must be a bool, got %s", key, describe(v))
		return fallback, false
	}
	return b.BoolValue, true
}

// count reads a whole number from 0 to maxPasswordLength; -1 when absent (or refused).
func (r *inputReader) count(key string) int {
	v := r.value(key)
	if v == nil {
		return -1
	}
	n, ok := v.GetKind().(*structpb.Value_NumberValue)
	if !ok || n.NumberValue != math.Trunc(n.NumberValue) || n.NumberValue < 0 || n.NumberValue > maxPasswordLength {
		r.fail(key, "%s must be a whole number from 0 to %d, got %s", key, maxPasswordLength, describe(v))
		return -1
	}
	return int(n.NumberValue)
}

func (r *inputReader) minimum(key string) int {
	return max(r.count(key), 0)
}

// parsePasswordInputs reads and checks a RandomPassword's inputs as the real provider documents
// them.
func parsePasswordInputs(fields map[string]*structpb.Value) (passwordSpec, []inputProblem) {
	r := &inputReader{fields: fields}
	var s passwordSpec
	if isNull(withoutSecrets(fields["length"])) {
		r.fail("length", "length is required")
		s.length = -1
	} else {
		s.length = r.count("length")
	}
	s.special, _ = r.boolean("special", true)
	s.upper, _ = r.boolean("upper", true)
	s.lower, _ = r.boolean("lower", true)
	numeric, numericGiven := r.boolean("numeric", true)
	number, numberGiven := r.boolean("number", true)
	switch {
	case numericGiven && numberGiven && numeric != number:
		r.fail("numeric", "numeric is %t but number (its deprecated name) is %t", numeric, number)
	case !numericGiven && numberGiven:
		numeric = number
	}
	s.numeric = numeric
	s.minUpper = r.minimum("minUpper")
	s.minLower = r.minimum("minLower")
	s.minNumeric = r.minimum("minNumeric")
	s.minSpecial = r.minimum("minSpecial")

	// An empty overrideSpecial leaves the default set, as a missing one does.
	s.specialChars = defaultSpecialChars
	if v := r.value("overrideSpecial"); v != nil {
		override, ok := v.GetKind().(*structpb.Value_StringValue)
		switch {
		case !ok:
			r.fail("overrideSpecial", "overrideSpecial must be a string, got %s", describe(v))
		case override.StringValue != "":
			s.specialChars = override.StringValue
		}
	}
	if v := r.value("keepers"); v != nil && v.GetStructValue() == nil {
		r.fail("keepers", "keepers must be a map of strings, got %s", describe(v))
	}

	if s.length == 0 {
		r.fail("length", "length must be at least 1, got 0")
	}
	if sum := s.minUpper + s.minLower + s.minNumeric + s.minSpecial; s.length > 0 && s.length < sum {
		r.fail("length", "length %d is less than minUpper + minLower + minNumeric + minSpecial = %d", s.length, sum)
	}
	// The documents do not say what a minimum of a class turned off means; the stand-in refuses
	// rather than guess.
	for _, c := range []struct {
		min        int
		minKey     string
		enabled    bool
		enabledKey string
	}{
		{s.minUpper, "minUpper", s.upper, "upper"},
		{s.minLower, "minLower", s.lower, "lower"},
		{s.minNumeric, "minNumeric", s.numeric, "numeric"},
		{s.minSpecial, "minSpecial", s.special, "special"},
	} {
		if c.min > 0 && !c.enabled {
			r.fail(c.minKey, "%s is %d but %s is false", c.minKey, c.min, c.enabledKey)
		}
	}
	if !s.upper && !s.lower && !s.numeric && !s.special {
		r.fail("", "upper, lower, numeric and special are all false: at least one must be true")
	}
	return s, r.problems
}

// generatePassword draws each class's minimum from that class, the rest from every enabled class,
// then shuffles, all with crypto/rand.
func generatePassword(s passwordSpec) (string, error) {
	var pool, password []rune
	for _, c := range s.classes() {
		if !c.enabled {
			continue
		}
		chars := []rune(c.chars)
		pool = append(pool, chars...)
		for range c.min {
			r, err := pick(chars)
			if err != nil {
				return "", err
			}
			password = append(password, r)
		}
	}
	for len(password) < s.length {
		r, err := pick(pool)
		if err != nil {
			return "", err
		}
		password = append(password, r)
	}
	// The minimums were drawn first; shuffling spreads them over the whole password.
	for i := len(password) - 1; i > 0; i-- {
		j, err := randomIndex(i + 1)
		if err != nil {
			return "", err
		}
		password[i], password[j] = password[j], password[i]
	}
	return string(password), nil
}

func pick(chars []rune) (rune, error) {
	i, err := randomIndex(len(chars))
	if err != nil {
		return 0, err
	}
	return chars[i], nil
}

// randomIndex: uniform in [0, n), without the bias of a modulo.
func randomIndex(n int) (int, error) {
	i, err := rand.Int(rand.Reader, big.NewInt(int64(n)))
	if err != nil {
		return 0, err
	}
	return int(i.Int64()), nil
}

func bcryptHashOf(password string) (string, error) {
	b := []byte(password)
	if len(b) > bcryptMaxBytes {
		b = b[:bcryptMaxBytes]
	}
	hash, err := bcrypt.GenerateFromPassword(b, bcrypt.DefaultCost)
	return string(hash), err
}

// filledPasswordInputs: the inputs with the documented defaults in place of absent or null ones,
// and number and numeric (one setting under two names) given the same value, as the real provider
// stores them.
func filledPasswordInputs(fields map[string]*structpb.Value, keepSecrets bool) map[string]*structpb.Value {
	filled := make(map[string]*structpb.Value)
	for _, in := range passwordInputs {
		v := fields[in.key]
		if isNull(withoutSecrets(v)) {
			v = in.fallback
		}
		if v == nil {
			continue
		}
		if !keepSecrets {
			v = withoutSecrets(v)
		}
		filled[in.key] = v
	}
	numberGiven := !isNull(withoutSecrets(fields["number"]))
	if isNull(withoutSecrets(fields["numeric"])) && numberGiven {
		filled["numeric"] = filled["number"]
	}
	if !numberGiven {
		filled["number"] = filled["numeric"]
	}
	return filled
}

// createPassword makes a RandomPassword outside a preview: every input with its default, plus
// result and bcryptHash, both secret when the engine accepts secrets.
func (p *standIn) createPassword(req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	what := fmt.Sprintf("cannot create %s %q", randomPasswordType, nameOf(req.GetName(), req.GetUrn()))
	fields := req.GetProperties().GetFields()
	spec, problems := parsePasswordInputs(fields)
	if len(problems) > 0 {
		return nil, p.errorf(codes.InvalidArgument, "%s: %s", what, joinProblems(problems))
	}
	result, err := generatePassword(spec)
	if err != nil {
		return nil, p.errorf(codes.Internal, "%s: generating the password: %v", what, err)
	}
	hash, err := bcryptHashOf(result)
	if err != nil {
		return nil, p.errorf(codes.Internal, "%s: hashing the password: %v", what, err)
	}
	outputs := filledPasswordInputs(fields, p.acceptSecrets.Load())
	outputs["result"] = p.maybeSecret(structpb.NewStringValue(result))
	outputs["bcryptHash"] = p.maybeSecret(structpb.NewStringValue(hash))
	return &pulumirpc.CreateResponse{Id: randomPasswordID, Properties: &structpb.Struct{Fields: outputs}}, nil
}

// checkPassword reports what Create would refuse, as the real provider does at Check, so a preview
// already fails. Inputs not known yet are left for Create to judge.
func checkPassword(news *structpb.Struct) []*pulumirpc.CheckFailure {
	if containsUnknown(structpb.NewStructValue(news)) {
		return nil
	}
	_, problems := parsePasswordInputs(news.GetFields())
	failures := make([]*pulumirpc.CheckFailure, len(problems))
	for i, pr := range problems {
		failures[i] = &pulumirpc.CheckFailure{Property: pr.property, Reason: pr.reason}
	}
	return failures
}

// diffPassword: every input of the real provider forces a new password, so any change replaces.
// Inputs are compared with defaults filled in and secrets unwrapped, so spelling out a default or
// making an input secret is no change; a value not known yet is one.
func diffPassword(req *pulumirpc.DiffRequest) *pulumirpc.DiffResponse {
	olds := req.GetOldInputs()
	if olds == nil {
		olds = req.GetOlds() // the outputs hold every input too
	}
	oldInputs := filledPasswordInputs(olds.GetFields(), false)
	newInputs := filledPasswordInputs(req.GetNews().GetFields(), false)
	var changed []string
	for _, in := range passwordInputs {
		old, hadOld := oldInputs[in.key]
		v, hasNew := newInputs[in.key]
		if hadOld != hasNew || !proto.Equal(old, v) {
			changed = append(changed, in.key)
		}
	}
	if len(changed) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}
	}
	sort.Strings(changed)
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: changed, Replaces: changed}
}

// maybeSecret wraps v as a secret (the protocol's signature-tagged object) when the engine said in
// Configure that it accepts secrets; otherwise v goes as it is.
func (p *standIn) maybeSecret(v *structpb.Value) *structpb.Value {
	if !p.acceptSecrets.Load() {
		return v
	}
	return structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
		sig.Key: structpb.NewStringValue(sig.Secret),
		"value": v,
	}})
}

func isSecret(v *structpb.Value) bool {
	return v.GetStructValue().GetFields()[sig.Key].GetStringValue() == sig.Secret
}

// withoutSecrets: v with every secret wrapper replaced by the value it wraps.
func withoutSecrets(v *structpb.Value) *structpb.Value {
	switch kind := v.GetKind().(type) {
	case *structpb.Value_StructValue:
		if isSecret(v) {
			return withoutSecrets(kind.StructValue.GetFields()["value"])
		}
		fields := make(map[string]*structpb.Value, len(kind.StructValue.GetFields()))
		for k, e := range kind.StructValue.GetFields() {
			fields[k] = withoutSecrets(e)
		}
		return structpb.NewStructValue(&structpb.Struct{Fields: fields})
	case *structpb.Value_ListValue:
		values := make([]*structpb.Value, len(kind.ListValue.GetValues()))
		for i, e := range kind.ListValue.GetValues() {
			values[i] = withoutSecrets(e)
		}
		return structpb.NewListValue(&structpb.ListValue{Values: values})
	}
	return v
}

func isNull(v *structpb.Value) bool {
	_, null := v.GetKind().(*structpb.Value_NullValue)
	return v == nil || v.GetKind() == nil || null
}

// containsUnknown: whether v holds any of the engine's sentinels for a value not known yet.
func containsUnknown(v *structpb.Value) bool {
	switch kind := v.GetKind().(type) {
	case *structpb.Value_StringValue:
		return sig.IsUnknown(kind.StringValue)
	case *structpb.Value_StructValue:
		for _, e := range kind.StructValue.GetFields() {
			if containsUnknown(e) {
				return true
			}
		}
	case *structpb.Value_ListValue:
		for _, e := range kind.ListValue.GetValues() {
			if containsUnknown(e) {
				return true
			}
		}
	}
	return false
}
