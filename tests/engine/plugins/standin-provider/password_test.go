package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	randomPrefix = `stand-in provider "random" 4.21.4 (meshlab engine tests): `
	grafanaURN   = "urn:pulumi:s::p::meshlab:observability:Grafana$random:index/randomPassword:RandomPassword::grafana-admin-password"
)

// randomClient: the random stand-in, configured as the engine does (every current engine accepts
// secrets).
func randomClient(t *testing.T, acceptSecrets bool) pulumirpc.ResourceProviderClient {
	t.Helper()
	c := clientOf(t, "random", "4.21.4")
	if _, err := c.Configure(context.Background(), &pulumirpc.ConfigureRequest{AcceptSecrets: acceptSecrets, AcceptResources: true}); err != nil {
		t.Fatal(err)
	}
	return c
}

func createPassword(t *testing.T, c pulumirpc.ResourceProviderClient, inputs map[string]any) (*pulumirpc.CreateResponse, error) {
	t.Helper()
	return c.Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: grafanaURN, Properties: structOf(t, inputs), Name: "grafana-admin-password", Type: randomPasswordType,
	})
}

// outputsOf unmarshals a Create's outputs as the engine does, secrets kept.
func outputsOf(t *testing.T, res *pulumirpc.CreateResponse, err error) resource.PropertyMap {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return unmarshal(t, res.GetProperties())
}

func stringOutput(t *testing.T, outputs resource.PropertyMap, key resource.PropertyKey) string {
	t.Helper()
	v := outputs[key]
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsString() {
		t.Fatalf("%s = %v, want a string", key, outputs[key])
	}
	return v.StringValue()
}

func TestRandomPasswordCreateFillsTheDefaultsAndHidesTheResult(t *testing.T) {
	// Grafana's admin password, as meshlab asks for it.
	res, err := createPassword(t, randomClient(t, true), map[string]any{"length": 32.0, "special": false})
	outputs := outputsOf(t, res, err)
	if res.GetId() != "none" {
		t.Fatalf("id = %q, want the real provider's static \"none\"", res.GetId())
	}
	want := resource.NewPropertyMapFromMap(map[string]any{
		"length": 32, "special": false, "upper": true, "lower": true, "numeric": true, "number": true,
		"minUpper": 0, "minLower": 0, "minNumeric": 0, "minSpecial": 0,
	})
	for k, v := range want {
		if !outputs[k].DeepEquals(v) {
			t.Errorf("output %s = %v, want %v", k, outputs[k], v)
		}
	}
	for _, k := range []resource.PropertyKey{"result", "bcryptHash"} {
		if !outputs[k].IsSecret() {
			t.Errorf("output %s is not secret: %v", k, outputs[k])
		}
	}
	for k := range outputs {
		if _, known := want[k]; !known && k != "result" && k != "bcryptHash" {
			t.Errorf("unexpected output %s = %v", k, outputs[k])
		}
	}
	result := stringOutput(t, outputs, "result")
	if !regexp.MustCompile(`^[A-Za-z0-9]{32}$`).MatchString(result) {
		t.Fatalf("result %q: want 32 letters and digits", result)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(stringOutput(t, outputs, "bcryptHash")), []byte(result)); err != nil {
		t.Fatalf("bcryptHash does not verify against result: %v", err)
	}
}

func TestRandomPasswordResultIsPlainWhenTheEngineRefusesSecrets(t *testing.T) {
	res, err := createPassword(t, randomClient(t, false), map[string]any{"length": 16.0})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"result", "bcryptHash"} {
		if v := res.GetProperties().GetFields()[k]; v.GetStringValue() == "" {
			t.Errorf("output %s = %v, want a plain string", k, v)
		}
	}
}

func TestRandomPasswordBcryptHashCoversTheFirst72Bytes(t *testing.T) {
	res, err := createPassword(t, randomClient(t, true), map[string]any{"length": 100.0})
	outputs := outputsOf(t, res, err)
	result := stringOutput(t, outputs, "result")
	if len(result) != 100 {
		t.Fatalf("result %q: want 100 characters", result)
	}
	if err := bcrypt.CompareHashAndPassword([]byte(stringOutput(t, outputs, "bcryptHash")), []byte(result[:72])); err != nil {
		t.Fatalf("bcryptHash does not verify against the first 72 bytes: %v", err)
	}
}

func TestTwoRandomPasswordsDiffer(t *testing.T) {
	c := randomClient(t, true)
	var results, hashes []string
	for range 2 {
		res, err := createPassword(t, c, map[string]any{"length": 64.0, "special": false})
		outputs := outputsOf(t, res, err)
		results = append(results, stringOutput(t, outputs, "result"))
		hashes = append(hashes, stringOutput(t, outputs, "bcryptHash"))
	}
	if results[0] == results[1] || hashes[0] == hashes[1] {
		t.Fatalf("two creates gave the same password or hash: %q, %q", results, hashes)
	}
}

// generated parses inputs and generates n passwords from them, without the RPC and bcrypt's cost.
func generated(t *testing.T, n int, inputs map[string]any) []string {
	t.Helper()
	spec, problems := parsePasswordInputs(structOf(t, inputs).GetFields())
	if len(problems) > 0 {
		t.Fatalf("inputs %v refused: %v", inputs, problems)
	}
	passwords := make([]string, n)
	for i := range passwords {
		pw, err := generatePassword(spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := utf8.RuneCountInString(pw); got != spec.length {
			t.Fatalf("password %q has %d characters, want %d", pw, got, spec.length)
		}
		passwords[i] = pw
	}
	return passwords
}

func TestRandomPasswordHonoursTheClasses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		inputs map[string]any
		only   string // a regexp every password matches
	}{
		{"special=false", map[string]any{"length": 40.0, "special": false}, `^[A-Za-z0-9]+$`},
		{"default specials", map[string]any{"length": 40.0, "upper": false, "lower": false, "numeric": false},
			`^[!@#$%&*()\-_=+\[\]{}<>:?]+$`},
		{"overrideSpecial", map[string]any{"length": 40.0, "upper": false, "lower": false, "numeric": false, "overrideSpecial": "_-"},
			`^[_-]+$`},
		{"an empty overrideSpecial keeps the default", map[string]any{"length": 40.0, "upper": false, "lower": false,
			"numeric": false, "overrideSpecial": ""}, `^[!@#$%&*()\-_=+\[\]{}<>:?]+$`},
		{"overrideSpecial unused without special", map[string]any{"length": 40.0, "special": false, "overrideSpecial": "_-"},
			`^[A-Za-z0-9]+$`},
		{"numeric only", map[string]any{"length": 40.0, "upper": false, "lower": false, "special": false}, `^[0-9]+$`},
		{"the deprecated number", map[string]any{"length": 40.0, "number": false, "special": false}, `^[A-Za-z]+$`},
		{"upper only", map[string]any{"length": 40.0, "lower": false, "numeric": false, "special": false}, `^[A-Z]+$`},
		{"multi-byte specials", map[string]any{"length": 40.0, "upper": false, "lower": false, "numeric": false, "overrideSpecial": "£€"},
			`^[£€]+$`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			only := regexp.MustCompile(tc.only)
			for _, pw := range generated(t, 50, tc.inputs) {
				if !only.MatchString(pw) {
					t.Fatalf("password %q does not match %s", pw, tc.only)
				}
			}
		})
	}
}

func TestRandomPasswordHonoursTheMinimums(t *testing.T) {
	count := func(pw, class string) int {
		return len(regexp.MustCompile(class).FindAllString(pw, -1))
	}
	for _, pw := range generated(t, 200, map[string]any{"length": 8.0, "minNumeric": 5.0}) {
		if count(pw, `[0-9]`) < 5 {
			t.Fatalf("password %q has fewer than 5 digits", pw)
		}
	}
	inputs := map[string]any{"length": 12.0, "overrideSpecial": "_-", "minSpecial": 4.0, "minUpper": 2.0, "minLower": 2.0, "minNumeric": 2.0}
	for _, pw := range generated(t, 200, inputs) {
		if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(pw) {
			t.Fatalf("password %q has a special outside overrideSpecial", pw)
		}
		if count(pw, `[_-]`) < 4 || count(pw, `[A-Z]`) < 2 || count(pw, `[a-z]`) < 2 || count(pw, `[0-9]`) < 2 {
			t.Fatalf("password %q misses a minimum of %v", pw, inputs)
		}
	}
	// Minimums filling the whole length: every position is drawn for one, then shuffled.
	seenDigitFirst := false
	for _, pw := range generated(t, 200, map[string]any{"length": 4.0, "minUpper": 2.0, "minNumeric": 2.0}) {
		if count(pw, `[A-Z]`) != 2 || count(pw, `[0-9]`) != 2 {
			t.Fatalf("password %q: want exactly 2 upper and 2 digits", pw)
		}
		seenDigitFirst = seenDigitFirst || (pw[0] >= '0' && pw[0] <= '9')
	}
	if !seenDigitFirst {
		t.Fatal("no password starts with a digit: the minimums are not shuffled")
	}
}

func TestRandomPasswordRefusesImpossibleInputsNamingThem(t *testing.T) {
	c := randomClient(t, true)
	for _, tc := range []struct {
		inputs   map[string]any
		property string
		wants    []string
	}{
		{map[string]any{"length": 4.0, "minUpper": 3.0, "minNumeric": 3.0}, "length",
			[]string{"length 4 is less than minUpper + minLower + minNumeric + minSpecial = 6"}},
		{map[string]any{"length": 0.0}, "length", []string{"length must be at least 1"}},
		{map[string]any{"special": false}, "length", []string{"length is required"}},
		{map[string]any{"length": "32"}, "length", []string{"length must be a whole number"}},
		{map[string]any{"length": 8.5}, "length", []string{"length must be a whole number"}},
		{map[string]any{"length": 8.0, "minUpper": -1.0}, "minUpper", []string{"minUpper must be a whole number"}},
		{map[string]any{"length": 8.0, "upper": false, "minUpper": 1.0}, "minUpper", []string{"minUpper is 1 but upper is false"}},
		{map[string]any{"length": 8.0, "numeric": true, "number": false}, "numeric", []string{"numeric is true but number"}},
		{map[string]any{"length": 8.0, "special": "no"}, "special", []string{"special must be a bool"}},
		{map[string]any{"length": 8.0, "upper": false, "lower": false, "numeric": false, "special": false}, "",
			[]string{"upper, lower, numeric and special are all false"}},
	} {
		_, err := createPassword(t, c, tc.inputs)
		failedWith(t, err, codes.InvalidArgument, randomPrefix,
			append([]string{"cannot create " + randomPasswordType, `"grafana-admin-password"`}, tc.wants...)...)

		// Check reports the same, so that a preview already fails.
		res, err := c.Check(context.Background(), &pulumirpc.CheckRequest{Urn: grafanaURN, News: structOf(t, tc.inputs)})
		if err != nil {
			t.Fatal(err)
		}
		failures := res.GetFailures()
		if len(failures) != 1 || failures[0].GetProperty() != tc.property || !strings.Contains(failures[0].GetReason(), tc.wants[0]) {
			t.Fatalf("Check of %v: failures %v, want one on %q saying %q", tc.inputs, failures, tc.property, tc.wants[0])
		}
	}

	// Inputs not known yet are left for Create to judge.
	unknown := structOf(t, map[string]any{"length": unknownString, "minUpper": 3.0})
	res, err := c.Check(context.Background(), &pulumirpc.CheckRequest{Urn: grafanaURN, News: unknown})
	if err != nil || len(res.GetFailures()) != 0 || !proto.Equal(res.GetInputs(), unknown) {
		t.Fatalf("Check with an unknown length = %v, %v", res, err)
	}
}

const unknownString = "04da6b54-80e4-46f7-96ec-b56ff0331ba9" // the engine's sentinel for a string not known yet

func secretOf(v any) map[string]any {
	return map[string]any{"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": v}
}

func TestRandomPasswordDiffReplacesOnAnyChange(t *testing.T) {
	c := randomClient(t, true)
	grafana := map[string]any{"length": 32.0, "special": false}
	created, err := createPassword(t, c, grafana)
	if err != nil {
		t.Fatal(err)
	}
	diff := func(olds, oldInputs, news *structpb.Struct) *pulumirpc.DiffResponse {
		t.Helper()
		res, err := c.Diff(context.Background(), &pulumirpc.DiffRequest{
			Id: "none", Urn: grafanaURN, Olds: olds, OldInputs: oldInputs, News: news,
		})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for _, tc := range []struct {
		name     string
		news     map[string]any
		replaces string
	}{
		{"no change", grafana, ""},
		{"a default spelled out", map[string]any{"length": 32.0, "special": false, "upper": true, "minLower": 0.0, "number": true}, ""},
		{"an input made secret", map[string]any{"length": secretOf(32.0), "special": false}, ""},
		{"length", map[string]any{"length": 64.0, "special": false}, "length"},
		{"special back to its default", map[string]any{"length": 32.0}, "special"},
		{"the deprecated number", map[string]any{"length": 32.0, "special": false, "number": false}, "number,numeric"},
		{"minNumeric", map[string]any{"length": 32.0, "special": false, "minNumeric": 5.0}, "minNumeric"},
		{"overrideSpecial", map[string]any{"length": 32.0, "special": false, "overrideSpecial": "_"}, "overrideSpecial"},
		{"keepers", map[string]any{"length": 32.0, "special": false, "keepers": map[string]any{"rotate": "1"}}, "keepers"},
		{"a length not known yet", map[string]any{"length": unknownString, "special": false}, "length"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			news := structOf(t, tc.news)
			// Against the old inputs, and against the outputs alone (an engine that sends no old
			// inputs): the same answer.
			for _, res := range []*pulumirpc.DiffResponse{
				diff(created.GetProperties(), structOf(t, grafana), news),
				diff(created.GetProperties(), nil, news),
			} {
				if tc.replaces == "" {
					if res.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE || len(res.GetDiffs()) != 0 {
						t.Fatalf("Diff = %v, want no change", res)
					}
					continue
				}
				if res.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME ||
					strings.Join(res.GetReplaces(), ",") != tc.replaces || strings.Join(res.GetDiffs(), ",") != tc.replaces {
					t.Fatalf("Diff = %v, want %s replaced", res, tc.replaces)
				}
			}
		})
	}
}

func TestRandomPasswordReadReturnsTheState(t *testing.T) {
	c := randomClient(t, true)
	inputs := structOf(t, map[string]any{"length": 32.0, "special": false})
	created, err := createPassword(t, c, inputs.AsMap())
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Read(context.Background(), &pulumirpc.ReadRequest{
		Id: "none", Urn: grafanaURN, Properties: created.GetProperties(), Inputs: inputs,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetId() != "none" || !proto.Equal(res.GetProperties(), created.GetProperties()) || !proto.Equal(res.GetInputs(), inputs) {
		t.Fatalf("Read = %v, want the state it was given", res)
	}

	// Without a state (an import) there is no password to read.
	_, err = c.Read(context.Background(), &pulumirpc.ReadRequest{Id: "hunter2", Urn: grafanaURN})
	failedWith(t, err, codes.Unimplemented, randomPrefix, "cannot read "+randomPasswordType, "hunter2", "cannot import")
}

func TestRandomPasswordDeleteSucceeds(t *testing.T) {
	c := randomClient(t, true)
	created, err := createPassword(t, c, map[string]any{"length": 32.0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Delete(context.Background(), &pulumirpc.DeleteRequest{Id: "none", Urn: grafanaURN, Properties: created.GetProperties()}); err != nil {
		t.Fatal(err)
	}
}

func TestRandomPasswordPreviewCreateStillEchoesTheInputs(t *testing.T) {
	inputs := structOf(t, map[string]any{"length": 32.0, "special": false})
	res, err := randomClient(t, true).Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: grafanaURN, Properties: inputs, Preview: true, Type: randomPasswordType,
	})
	if err != nil || res.GetId() != "" || !proto.Equal(res.GetProperties(), inputs) {
		t.Fatalf("preview Create = %v, %v; want the inputs echoed and no id", res, err)
	}
}

// Only the random stand-in creates, and only RandomPasswords; the rest refuses as before.
func TestEverythingElseIsStillRefused(t *testing.T) {
	ctx := context.Background()
	random := randomClient(t, true)
	_, err := random.Create(ctx, &pulumirpc.CreateRequest{Urn: "urn:pulumi:s::p::random:index/randomString:RandomString::s", Properties: structOf(t, map[string]any{"length": 8.0})})
	failedWith(t, err, codes.Unimplemented, randomPrefix, "cannot create random:index/randomString:RandomString", `"s"`, "creates nothing")
	_, err = random.Read(ctx, &pulumirpc.ReadRequest{Id: "x", Urn: "urn:pulumi:s::p::random:index/randomId:RandomId::i", Properties: structOf(t, map[string]any{"hex": "ab"})})
	failedWith(t, err, codes.Unimplemented, randomPrefix, "cannot read random:index/randomId:RandomId")
	_, err = random.Update(ctx, &pulumirpc.UpdateRequest{Id: "none", Urn: grafanaURN, News: structOf(t, map[string]any{"length": 8.0})})
	failedWith(t, err, codes.Unimplemented, randomPrefix, "cannot update "+randomPasswordType)
	_, err = random.Invoke(ctx, &pulumirpc.InvokeRequest{Tok: "random:index/getSomething:getSomething"})
	failedWith(t, err, codes.Unimplemented, randomPrefix, "cannot invoke random:index/getSomething:getSomething")

	password := structOf(t, map[string]any{"length": 32.0})
	for _, other := range []struct{ name, version, typ string }{
		{"tls", "5.6.2", "tls:index/privateKey:PrivateKey"},
		{"tls", "5.6.2", randomPasswordType},
		{"command", "1.2.1", "command:local:Command"},
		{"command", "1.2.1", randomPasswordType},
	} {
		c := clientOf(t, other.name, other.version)
		if _, err := c.Configure(ctx, &pulumirpc.ConfigureRequest{AcceptSecrets: true}); err != nil {
			t.Fatal(err)
		}
		_, err := c.Create(ctx, &pulumirpc.CreateRequest{Urn: "urn:pulumi:s::p::" + other.typ + "::x", Properties: password})
		wantPrefix := `stand-in provider "` + other.name + `" ` + other.version + ` (meshlab engine tests): `
		failedWith(t, err, codes.Unimplemented, wantPrefix, "cannot create "+other.typ, "creates nothing")
		res, err := c.Check(ctx, &pulumirpc.CheckRequest{Urn: "urn:pulumi:s::p::" + other.typ + "::x", News: structOf(t, map[string]any{"length": 0.0})})
		if err != nil || len(res.GetFailures()) != 0 {
			t.Fatalf("%s stand-in's Check = %v, %v; want the inputs taken as they are", other.name, res, err)
		}
	}
}

// The SDK reads a secret-wrapped length as the engine does, and the stand-in creates from it.
func TestRandomPasswordAcceptsSecretInputs(t *testing.T) {
	props := resource.PropertyMap{
		"length":  resource.MakeSecret(resource.NewNumberProperty(20)),
		"keepers": resource.NewObjectProperty(resource.PropertyMap{"k": resource.MakeSecret(resource.NewStringProperty("v"))}),
	}
	s, err := plugin.MarshalProperties(props, plugin.MarshalOptions{KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	res, err := randomClient(t, true).Create(context.Background(), &pulumirpc.CreateRequest{Urn: grafanaURN, Properties: s})
	outputs := outputsOf(t, res, err)
	if got := stringOutput(t, outputs, "result"); len(got) != 20 {
		t.Fatalf("result %q: want 20 characters", got)
	}
	if !outputs["length"].IsSecret() || !outputs["keepers"].ObjectValue()["k"].IsSecret() {
		t.Fatalf("a secret input lost its secrecy in the outputs: %v", outputs)
	}
}
