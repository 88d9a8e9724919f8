package call

import (
	"context"

	"github.com/pion/webrtc/v4"

	"github.com/parleychat/parley/internal/api"
	"github.com/parleychat/parley/internal/client"
)

// ClientOptions returns engine options wired to a client: signals go out
// with c.SendCall, TURN credentials come from c.TURN. The caller sets
// OnEvent, Logger and the rest, and hands every client.EventCall to
// Engine.Handle (SignalOf converts it).
func ClientOptions(c *client.Client) Options {
	return Options{
		Signaler: c,
		DeviceID: c.DeviceID(),
		ICEServers: func(ctx context.Context) ([]webrtc.ICEServer, error) {
			t, err := c.TURN(ctx)
			if err != nil {
				return nil, err
			}
			return ICEServers(t), nil
		},
	}
}

// ICEServers converts the server's TURN answer for pion.
func ICEServers(t api.TURNCredentials) []webrtc.ICEServer {
	out := make([]webrtc.ICEServer, 0, len(t.ICEServers))
	for _, s := range t.ICEServers {
		out = append(out, webrtc.ICEServer{URLs: s.URLs, Username: s.Username, Credential: s.Credential})
	}
	return out
}

// SignalOf returns the call signal of a client event, if it is one.
func SignalOf(ev client.Event) (Signal, bool) {
	if ev.Type != client.EventCall || ev.Call == nil {
		return Signal{}, false
	}
	s := ev.Call
	return Signal{Call: s.Call, Peer: s.Peer, Own: s.Own(), SenderDevice: s.SenderDevice, ServerTime: s.ServerTime}, true
}
