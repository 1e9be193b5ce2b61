package main

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"
)

// standIn answers the ResourceProvider protocol as a real provider does on a first `pulumi preview`,
// and refuses everything that would need a real resource, with one exception: the random stand-in
// creates RandomPasswords (password.go). A password lives in the engine's state only, so the
// stand-in keeps nothing itself.
type standIn struct {
	pulumirpc.UnimplementedResourceProviderServer

	name    string // the package, e.g. "command"
	version string // the version it is installed and reported under, e.g. "1.2.1"

	// acceptSecrets: the engine said in Configure that it takes secret-wrapped outputs.
	acceptSecrets atomic.Bool
}

func newStandIn(name, version string) *standIn {
	return &standIn{name: name, version: version}
}

// errorf builds a gRPC error whose message says which stand-in answered, so that a failure in the
// engine tests can never be mistaken for one of the real provider.
func (p *standIn) errorf(code codes.Code, format string, args ...any) error {
	return status.Error(code, p.prefix()+fmt.Sprintf(format, args...))
}

func (p *standIn) prefix() string {
	return fmt.Sprintf("stand-in provider %q %s (meshlab engine tests): ", p.name, p.version)
}

// refuse is the answer to anything that would act on a real resource.
func (p *standIn) refuse(what string) error {
	return p.errorf(codes.Unimplemented, "%s: the stand-in only answers previews and creates nothing", what)
}

// typeOf names the resource of a request: its type token, from the request or else the URN
// (urn:pulumi:STACK::PROJECT::[PARENT$]TYPE::NAME).
func typeOf(typ, urn string) string {
	if typ != "" {
		return typ
	}
	if parts := splitURN(urn); parts != nil {
		return parts[0]
	}
	return "a resource"
}

func nameOf(name, urn string) string {
	if name != "" {
		return name
	}
	if parts := splitURN(urn); parts != nil {
		return parts[1]
	}
	return ""
}

// splitURN returns [type, name] of a URN, or nil if it is not one.
func splitURN(urn string) []string {
	parts := strings.SplitN(urn, "::", 4)
	if len(parts) != 4 || !strings.HasPrefix(parts[0], "urn:pulumi:") {
		return nil
	}
	qualified := parts[2]
	return []string{qualified[strings.LastIndex(qualified, "$")+1:], parts[3]}
}

// Handshake: the same protocol answers as Configure, where the two overlap.
func (p *standIn) Handshake(context.Context, *pulumirpc.ProviderHandshakeRequest) (*pulumirpc.ProviderHandshakeResponse, error) {
	return &pulumirpc.ProviderHandshakeResponse{AcceptSecrets: true, AcceptResources: true}, nil
}

func (p *standIn) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: p.version}, nil
}

// GetSchema: a minimal valid package schema. The engine tests use the published Python SDKs, so no
// resource needs describing here.
func (p *standIn) GetSchema(context.Context, *pulumirpc.GetSchemaRequest) (*pulumirpc.GetSchemaResponse, error) {
	schema, err := json.Marshal(map[string]string{"name": p.name, "version": p.version})
	if err != nil {
		return nil, p.errorf(codes.Internal, "schema: %v", err)
	}
	return &pulumirpc.GetSchemaResponse{Schema: string(schema)}, nil
}

func (p *standIn) CheckConfig(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	return &pulumirpc.CheckResponse{Inputs: req.GetNews()}, nil
}

func (p *standIn) DiffConfig(context.Context, *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
}

// Configure: supportsPreview makes the engine send preview Creates and Updates here instead of
// making up the result itself. Whether the engine takes secret outputs decides how a password's
// result is returned.
func (p *standIn) Configure(_ context.Context, req *pulumirpc.ConfigureRequest) (*pulumirpc.ConfigureResponse, error) {
	p.acceptSecrets.Store(req.GetAcceptSecrets())
	return &pulumirpc.ConfigureResponse{AcceptSecrets: true, AcceptResources: true, SupportsPreview: true}, nil
}

// Check: the inputs are taken as they are. The struct is passed back untouched, so unknown values
// (the engine's sentinel string) and secrets (signature-tagged objects) survive as they came. A
// RandomPassword's inputs the stand-in would refuse to create are reported as failures.
func (p *standIn) Check(_ context.Context, req *pulumirpc.CheckRequest) (*pulumirpc.CheckResponse, error) {
	var failures []*pulumirpc.CheckFailure
	if p.makesPasswords(typeOf(req.GetType(), req.GetUrn())) {
		failures = checkPassword(req.GetNews())
	}
	return &pulumirpc.CheckResponse{Inputs: req.GetNews(), Failures: failures}, nil
}

// Diff compares the old inputs (the old outputs if the engine sent no inputs) with the new ones, key
// by key on the wire form: a value that differs in any way is a change, so is one unknown now (old
// inputs are always known). A RandomPassword is diffed as the real provider does (diffPassword).
func (p *standIn) Diff(_ context.Context, req *pulumirpc.DiffRequest) (*pulumirpc.DiffResponse, error) {
	if p.makesPasswords(typeOf(req.GetType(), req.GetUrn())) {
		return diffPassword(req), nil
	}
	olds := req.GetOldInputs()
	if olds == nil {
		olds = req.GetOlds()
	}
	changed := changedKeys(olds.GetFields(), req.GetNews().GetFields())
	if len(changed) == 0 {
		return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_NONE}, nil
	}
	return &pulumirpc.DiffResponse{Changes: pulumirpc.DiffResponse_DIFF_SOME, Diffs: changed}, nil
}

// changedKeys: the top-level keys added, removed or changed, sorted.
func changedKeys(olds, news map[string]*structpb.Value) []string {
	var changed []string
	for k, v := range news {
		if old, ok := olds[k]; !ok || !proto.Equal(old, v) {
			changed = append(changed, k)
		}
	}
	for k := range olds {
		if _, ok := news[k]; !ok {
			changed = append(changed, k)
		}
	}
	sort.Strings(changed)
	return changed
}

// Create on a preview returns the inputs as the outputs and no ID, as a first preview of a real
// provider looks: inputs echoed, computed outputs unknown. The computed outputs (a Command's stdout,
// a RandomPassword's result, a PrivateKey's PEMs) are simply absent, which the Python SDK takes as
// unknown in a dry run: pulumi/runtime/rpc.py, resolve_properties (pulumi 3.272.0), resolves every
// resolver whose key is missing with known = not settings.is_dry_run() and not
// resolve_missing_as_unknown, so known=False on a preview. Outside a preview only a RandomPassword
// is created; anything else is refused.
func (p *standIn) Create(_ context.Context, req *pulumirpc.CreateRequest) (*pulumirpc.CreateResponse, error) {
	if !req.GetPreview() {
		typ := typeOf(req.GetType(), req.GetUrn())
		if p.makesPasswords(typ) {
			return p.createPassword(req)
		}
		return nil, p.refuse(fmt.Sprintf("cannot create %s %q", typ, nameOf(req.GetName(), req.GetUrn())))
	}
	return &pulumirpc.CreateResponse{Id: "", Properties: req.GetProperties()}, nil
}

// Update on a preview: the new inputs, as for Create.
func (p *standIn) Update(_ context.Context, req *pulumirpc.UpdateRequest) (*pulumirpc.UpdateResponse, error) {
	if !req.GetPreview() {
		return nil, p.refuse(fmt.Sprintf("cannot update %s %q",
			typeOf(req.GetType(), req.GetUrn()), nameOf(req.GetName(), req.GetUrn())))
	}
	return &pulumirpc.UpdateResponse{Properties: req.GetNews()}, nil
}

// Delete succeeds: a RandomPassword exists only in the engine's state, and the stand-in created
// nothing else, so there is nothing to remove.
func (p *standIn) Delete(context.Context, *pulumirpc.DeleteRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// Read (refresh) of a RandomPassword returns the state it is given: the password exists nowhere
// else. Without a state (an import) there is nothing to read.
func (p *standIn) Read(_ context.Context, req *pulumirpc.ReadRequest) (*pulumirpc.ReadResponse, error) {
	typ, name := typeOf(req.GetType(), req.GetUrn()), nameOf(req.GetName(), req.GetUrn())
	if p.makesPasswords(typ) {
		if len(req.GetProperties().GetFields()) == 0 {
			return nil, p.errorf(codes.Unimplemented, "cannot read %s %q (id %q): the stand-in reads back "+
				"only a password it created, from the state; it cannot import one", typ, name, req.GetId())
		}
		return &pulumirpc.ReadResponse{Id: req.GetId(), Properties: req.GetProperties(), Inputs: req.GetInputs()}, nil
	}
	return nil, p.refuse(fmt.Sprintf("cannot read %s %q (id %q)", typ, name, req.GetId()))
}

func (p *standIn) Invoke(_ context.Context, req *pulumirpc.InvokeRequest) (*pulumirpc.InvokeResponse, error) {
	return nil, p.refuse(fmt.Sprintf("cannot invoke %s", req.GetTok()))
}

func (p *standIn) Call(_ context.Context, req *pulumirpc.CallRequest) (*pulumirpc.CallResponse, error) {
	return nil, p.refuse(fmt.Sprintf("cannot call %s", req.GetTok()))
}

func (p *standIn) Construct(_ context.Context, req *pulumirpc.ConstructRequest) (*pulumirpc.ConstructResponse, error) {
	return nil, p.refuse(fmt.Sprintf("cannot construct %s %q", req.GetType(), req.GetName()))
}

func (p *standIn) Parameterize(context.Context, *pulumirpc.ParameterizeRequest) (*pulumirpc.ParameterizeResponse, error) {
	return nil, p.errorf(codes.Unimplemented, "Parameterize is not implemented")
}

func (p *standIn) List(_ *pulumirpc.ListRequest, _ grpc.ServerStreamingServer[pulumirpc.ListResponse]) error {
	return p.errorf(codes.Unimplemented, "List is not implemented")
}

func (p *standIn) Attach(context.Context, *pulumirpc.PluginAttach) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// Cancel: nothing runs, so nothing to abort.
func (p *standIn) Cancel(context.Context, *emptypb.Empty) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

// GetMapping/GetMappings: no mappings to other ecosystems (an empty answer, which the engine reads as
// "none", rather than an error it would report).
func (p *standIn) GetMapping(context.Context, *pulumirpc.GetMappingRequest) (*pulumirpc.GetMappingResponse, error) {
	return &pulumirpc.GetMappingResponse{}, nil
}

func (p *standIn) GetMappings(context.Context, *pulumirpc.GetMappingsRequest) (*pulumirpc.GetMappingsResponse, error) {
	return &pulumirpc.GetMappingsResponse{}, nil
}
