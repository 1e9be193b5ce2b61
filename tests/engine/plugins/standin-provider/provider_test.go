package main

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

const (
	commandURN  = "urn:pulumi:s::p::command:local:Command::hello"
	passwordURN = "urn:pulumi:s::p::my:index:Parent$random:index/randomPassword:RandomPassword::pw"
	prefix      = `stand-in provider "command" 1.2.1 (meshlab engine tests): `
)

// client serves a stand-in for command 1.2.1 on a loopback port and dials it, as the engine does.
func client(t *testing.T) pulumirpc.ResourceProviderClient {
	t.Helper()
	return clientOf(t, "command", "1.2.1")
}

func clientOf(t *testing.T, name, version string) pulumirpc.ResourceProviderClient {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	pulumirpc.RegisterResourceProviderServer(srv, newStandIn(name, version))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return dial(t, lis.Addr().String())
}

func dial(t *testing.T, addr string) pulumirpc.ResourceProviderClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return pulumirpc.NewResourceProviderClient(conn)
}

// inputs: a known string, an unknown (computed) value and a secret, marshalled as the engine sends
// them to a provider that accepts secrets during a preview.
func inputs(t *testing.T) (resource.PropertyMap, *structpb.Struct) {
	t.Helper()
	props := resource.PropertyMap{
		"create":      resource.NewStringProperty("echo hi"),
		"environment": resource.MakeComputed(resource.NewStringProperty("")),
		"stdin":       resource.MakeSecret(resource.NewStringProperty("s3cret")),
		"triggers": resource.NewArrayProperty([]resource.PropertyValue{
			resource.NewNumberProperty(1), resource.MakeComputed(resource.NewStringProperty("")),
		}),
	}
	s, err := plugin.MarshalProperties(props, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	return props, s
}

func unmarshal(t *testing.T, s *structpb.Struct) resource.PropertyMap {
	t.Helper()
	props, err := plugin.UnmarshalProperties(s, plugin.MarshalOptions{KeepUnknowns: true, KeepSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	return props
}

func assertSame(t *testing.T, want resource.PropertyMap, got *structpb.Struct) {
	t.Helper()
	props := unmarshal(t, got)
	if !props.DeepEquals(want) {
		t.Fatalf("properties changed:\nwant %v\n got %v", want, props)
	}
	if !props["environment"].IsComputed() || !props["stdin"].IsSecret() {
		t.Fatalf("the unknown or the secret was lost: %v", props)
	}
}

// refused: the call failed with Unimplemented, naming the command stand-in and each of wants.
func refused(t *testing.T, err error, wants ...string) {
	t.Helper()
	failedWith(t, err, codes.Unimplemented, prefix, wants...)
}

// failedWith: the call failed with code, its message starting with the stand-in's prefix and saying
// each of wants.
func failedWith(t *testing.T, err error, code codes.Code, prefix string, wants ...string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("want a %v error, got %v", code, err)
	}
	msg := status.Convert(err).Message()
	if !strings.HasPrefix(msg, prefix) {
		t.Fatalf("the error does not name the stand-in: %q", msg)
	}
	for _, w := range wants {
		if !strings.Contains(msg, w) {
			t.Fatalf("the error does not say %q: %q", w, msg)
		}
	}
}

func TestGetPluginInfoReportsTheVersion(t *testing.T) {
	info, err := client(t).GetPluginInfo(context.Background(), &emptypb.Empty{})
	if err != nil || info.GetVersion() != "1.2.1" {
		t.Fatalf("GetPluginInfo = %v, %v; want version 1.2.1", info, err)
	}
}

func TestHandshakeAcceptsSecretsAndResources(t *testing.T) {
	res, err := client(t).Handshake(context.Background(), &pulumirpc.ProviderHandshakeRequest{EngineAddress: "127.0.0.1:1"})
	if err != nil || !res.GetAcceptSecrets() || !res.GetAcceptResources() || res.GetAcceptOutputs() {
		t.Fatalf("Handshake = %v, %v", res, err)
	}
}

func TestGetSchemaIsMinimal(t *testing.T) {
	res, err := client(t).GetSchema(context.Background(), &pulumirpc.GetSchemaRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(res.GetSchema()), &schema); err != nil {
		t.Fatalf("schema %q: %v", res.GetSchema(), err)
	}
	if len(schema) != 2 || schema["name"] != "command" || schema["version"] != "1.2.1" {
		t.Fatalf("schema = %v", schema)
	}
}

func TestCheckConfigEchoesAndDiffConfigFindsNoDiff(t *testing.T) {
	c := client(t)
	news, _ := structpb.NewStruct(map[string]any{"version": "1.2.1"})
	res, err := c.CheckConfig(context.Background(), &pulumirpc.CheckRequest{Urn: "urn:pulumi:s::p::pulumi:providers:command::default", News: news})
	if err != nil || res.GetInputs().GetFields()["version"].GetStringValue() != "1.2.1" || len(res.GetFailures()) != 0 {
		t.Fatalf("CheckConfig = %v, %v", res, err)
	}
	olds, _ := structpb.NewStruct(map[string]any{"version": "1.0.0"})
	diff, err := c.DiffConfig(context.Background(), &pulumirpc.DiffRequest{Olds: olds, News: news})
	if err != nil || diff.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("DiffConfig = %v, %v", diff, err)
	}
}

func TestConfigureSupportsPreview(t *testing.T) {
	res, err := client(t).Configure(context.Background(), &pulumirpc.ConfigureRequest{AcceptSecrets: true, AcceptResources: true})
	if err != nil || !res.GetAcceptSecrets() || !res.GetAcceptResources() || !res.GetSupportsPreview() {
		t.Fatalf("Configure = %v, %v", res, err)
	}
}

func TestCheckReturnsTheNewsUnchanged(t *testing.T) {
	want, news := inputs(t)
	res, err := client(t).Check(context.Background(), &pulumirpc.CheckRequest{
		Urn: commandURN, News: news, RandomSeed: []byte{1, 2, 3}, Name: "hello", Type: "command:local:Command",
	})
	if err != nil || len(res.GetFailures()) != 0 {
		t.Fatalf("Check = %v, %v", res, err)
	}
	assertSame(t, want, res.GetInputs())
}

func TestDiffReportsTheChangedKeys(t *testing.T) {
	c := client(t)
	olds, _ := structpb.NewStruct(map[string]any{"create": "echo a", "dir": "/tmp", "same": 1.0, "gone": true})
	news, _ := structpb.NewStruct(map[string]any{"create": "echo b", "dir": "/tmp", "same": 1.0, "added": "x"})

	res, err := c.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: commandURN, OldInputs: olds, News: news})
	if err != nil || res.GetChanges() != pulumirpc.DiffResponse_DIFF_SOME {
		t.Fatalf("Diff = %v, %v", res, err)
	}
	if got := strings.Join(res.GetDiffs(), ","); got != "added,create,gone" {
		t.Fatalf("changed keys = %q, want added,create,gone", got)
	}
	if len(res.GetReplaces()) != 0 {
		t.Fatalf("replaces = %v, want none", res.GetReplaces())
	}

	// The old outputs stand in for the old inputs when the engine sends none.
	res, err = c.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: commandURN, Olds: olds, News: olds})
	if err != nil || res.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE || len(res.GetDiffs()) != 0 {
		t.Fatalf("Diff of equal properties = %v, %v", res, err)
	}

	// The same secret is no change; a value unknown now (old inputs are known) or a secret that
	// differs is one.
	_, withUnknown := inputs(t)
	_, same := inputs(t)
	res, err = c.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: commandURN, OldInputs: same, News: withUnknown})
	if err != nil || res.GetChanges() != pulumirpc.DiffResponse_DIFF_NONE {
		t.Fatalf("Diff of the same inputs = %v, %v", res, err)
	}
	known := structOf(t, map[string]any{"create": "echo hi", "environment": "E", "stdin": "x", "triggers": []any{1.0, "t"}})
	res, err = c.Diff(context.Background(), &pulumirpc.DiffRequest{Urn: commandURN, OldInputs: known, News: withUnknown})
	if err != nil || strings.Join(res.GetDiffs(), ",") != "environment,stdin,triggers" {
		t.Fatalf("Diff against unknowns and a secret = %v, %v", res, err)
	}
}

func structOf(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPreviewCreateEchoesTheInputs(t *testing.T) {
	want, props := inputs(t)
	res, err := client(t).Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: commandURN, Properties: props, Preview: true, Name: "hello", Type: "command:local:Command",
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetId() != "" {
		t.Fatalf("a preview Create returned the id %q; want none", res.GetId())
	}
	assertSame(t, want, res.GetProperties())
	// No computed output is made up: the SDK takes the absent ones as unknown.
	if _, ok := res.GetProperties().GetFields()["stdout"]; ok {
		t.Fatal("a preview Create returned a stdout")
	}
}

func TestCreateIsRefusedOutsideAPreview(t *testing.T) {
	_, props := inputs(t)
	_, err := client(t).Create(context.Background(), &pulumirpc.CreateRequest{
		Urn: commandURN, Properties: props, Name: "hello", Type: "command:local:Command",
	})
	refused(t, err, "1.2.1", "command:local:Command", `"hello"`)

	// Without name and type in the request, the URN says them (the parent's type left out).
	_, err = client(t).Create(context.Background(), &pulumirpc.CreateRequest{Urn: passwordURN, Properties: props})
	refused(t, err, "random:index/randomPassword:RandomPassword", `"pw"`)
}

func TestUpdate(t *testing.T) {
	c := client(t)
	want, news := inputs(t)
	olds := structOf(t, map[string]any{"create": "echo old"})
	res, err := c.Update(context.Background(), &pulumirpc.UpdateRequest{Id: "x", Urn: commandURN, Olds: olds, News: news, Preview: true})
	if err != nil {
		t.Fatal(err)
	}
	assertSame(t, want, res.GetProperties())

	_, err = c.Update(context.Background(), &pulumirpc.UpdateRequest{Id: "x", Urn: commandURN, Olds: olds, News: news})
	refused(t, err, "cannot update command:local:Command", `"hello"`)
}

func TestDeleteSucceeds(t *testing.T) {
	_, err := client(t).Delete(context.Background(), &pulumirpc.DeleteRequest{Id: "x", Urn: commandURN})
	if err != nil {
		t.Fatal(err)
	}
}

func TestReadInvokeCallConstructAreRefused(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	_, err := c.Read(ctx, &pulumirpc.ReadRequest{Id: "id-1", Urn: commandURN})
	refused(t, err, "cannot read command:local:Command", `"hello"`, "id-1")
	_, err = c.Invoke(ctx, &pulumirpc.InvokeRequest{Tok: "command:local:run"})
	refused(t, err, "cannot invoke command:local:run")
	_, err = c.Call(ctx, &pulumirpc.CallRequest{Tok: "command:local:Command/method"})
	refused(t, err, "cannot call command:local:Command/method")
	_, err = c.Construct(ctx, &pulumirpc.ConstructRequest{Type: "command:index:Component", Name: "c"})
	refused(t, err, "cannot construct command:index:Component", `"c"`)
	_, err = c.Parameterize(ctx, &pulumirpc.ParameterizeRequest{})
	refused(t, err, "Parameterize")
	stream, err := c.List(ctx, &pulumirpc.ListRequest{})
	if err == nil {
		_, err = stream.Recv()
	}
	refused(t, err, "List")
}

func TestHarmlessCallsAnswerEmpty(t *testing.T) {
	c := client(t)
	ctx := context.Background()
	if _, err := c.Attach(ctx, &pulumirpc.PluginAttach{Address: "127.0.0.1:1"}); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if _, err := c.Cancel(ctx, &emptypb.Empty{}); err != nil {
		t.Fatalf("Cancel: %v", err)
	}
	m, err := c.GetMapping(ctx, &pulumirpc.GetMappingRequest{Key: "terraform", Provider: "command"})
	if err != nil || m.GetProvider() != "" || len(m.GetData()) != 0 {
		t.Fatalf("GetMapping = %v, %v", m, err)
	}
	ms, err := c.GetMappings(ctx, &pulumirpc.GetMappingsRequest{Key: "terraform"})
	if err != nil || len(ms.GetProviders()) != 0 {
		t.Fatalf("GetMappings = %v, %v", ms, err)
	}
}
