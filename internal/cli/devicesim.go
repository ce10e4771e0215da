package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/outpost-iot/outpost/internal/sas"
)

// The `iot device` commands play a device, as the azure-iot extension's
// do: they read the device's key from the registry (with the hub's service
// credential) and then speak the device API signed with that key. Messages
// go over HTTPS (the extension's send-d2c-message uses MQTT; the hub
// handles both alike).

// simulatedDevice is a device's side of a hub.
type simulatedDevice struct {
	hub *hubTarget
	id  string
	key string
}

// deviceFor looks the device up and returns it ready to sign requests, or
// uses --key when given (no registry read then).
func deviceFor(cmd *cobra.Command, d deviceFlags, key string) (*simulatedDevice, error) {
	c, err := newAPIClient(cmd)
	if err != nil {
		return nil, err
	}
	ctx := cmd.Context()
	t, err := c.resolveHub(ctx, d.hub)
	if err != nil {
		return nil, err
	}
	if key == "" {
		var dev struct {
			Authentication struct {
				Type         string
				SymmetricKey struct{ PrimaryKey string }
			}
		}
		if err := t.doJSON(ctx, hubRequest{method: http.MethodGet, path: devicePath(d.deviceID)}, &dev); err != nil {
			return nil, err
		}
		if !strings.EqualFold(dev.Authentication.Type, "sas") || dev.Authentication.SymmetricKey.PrimaryKey == "" {
			return nil, usageErrorf("device %s authenticates with %s: these commands simulate a device with its symmetric key; use an SDK with the device's certificate instead", d.deviceID, dev.Authentication.Type)
		}
		key = dev.Authentication.SymmetricKey.PrimaryKey
	}
	return &simulatedDevice{hub: t, id: d.deviceID, key: key}, nil
}

// auth is the device's SAS token for its own resource.
func (s *simulatedDevice) auth() (string, error) {
	token, err := sas.Sign(s.hub.HostName+"/devices/"+url.PathEscape(s.id), s.key, "", time.Now().Add(time.Hour))
	if err != nil {
		return "", fmt.Errorf("sign with the device key: %w", err)
	}
	return token, nil
}

// messageHeaders maps --props to the device API's headers: the system
// properties the extension reads from their MQTT names ($.mid, $.cid, $.ct,
// $.ce, $.uid, $.exp), everything else an application property.
func messageHeaders(props map[string]string) http.Header {
	system := map[string]string{
		"$.mid": "IoTHub-MessageId", "$.cid": "IoTHub-CorrelationId", "$.uid": "IoTHub-UserId",
		"$.exp": "IoTHub-Expiry", "$.ct": "iothub-contenttype", "$.ce": "iothub-contentencoding",
	}
	h := http.Header{}
	for k, v := range props {
		if name, ok := system[k]; ok {
			h.Set(name, v)
			continue
		}
		h.Set("iothub-app-"+k, v)
	}
	return h
}

// keyValuePairs is the extension's validate_key_value_pairs: "a=b;c=d".
func keyValuePairs(flag, s string) (map[string]string, error) {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ";") {
		if strings.TrimSpace(kv) == "" {
			continue
		}
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usageErrorf("argument %s: %q is not key=value; separate pairs with ';'", flag, kv)
		}
		out[k] = v
	}
	return out, nil
}

func newSendD2CCommand() *cobra.Command {
	var (
		d                          deviceFlags
		data, dataFile, props, key string
		count, qos                 int
	)
	cmd := &cobra.Command{
		Use:   "send-d2c-message --hub-name NAME --device-id ID [--data TEXT] [--props a=b;c=d] [--msg-count N]",
		Short: "Send device-to-cloud messages as the device (HTTPS, signed with the device's key)",
		Long: "Send device-to-cloud messages as the device, as `az iot device send-d2c-message` does. --props\n" +
			"takes application properties and the system properties $.mid (message id), $.cid\n" +
			"(correlation id), $.ct (content type), $.ce (content encoding), $.uid and $.exp. --qos is\n" +
			"accepted and ignored: every message is sent over HTTPS and acknowledged by the hub.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.need(cmd); err != nil {
				return err
			}
			if count < 1 {
				return usageErrorf("argument --msg-count/--mc: must be at least 1")
			}
			if qos != 0 && qos != 1 {
				return usageErrorf("argument --qos: invalid choice: %d (choose from 0, 1)", qos)
			}
			pairs, err := keyValuePairs("--props", props)
			if err != nil {
				return err
			}
			payload := []byte(data)
			if dataFile != "" {
				if payload, err = os.ReadFile(dataFile); err != nil {
					return fmt.Errorf("read --data-file-path: %w", err)
				}
			}
			dev, err := deviceFor(cmd, d, key)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			for i := 0; i < count; i++ {
				if err := dev.send(ctx, payload, messageHeaders(pairs)); err != nil {
					if count > 1 {
						return fmt.Errorf("message %d of %d: %w", i+1, count, err)
					}
					return err
				}
			}
			return nil
		},
	}
	d.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&data, "data", "Ping from Az CLI IoT Extension", "message body")
	fs.StringVar(&dataFile, "data-file-path", "", "read the message body from this file")
	fs.StringVarP(&props, "props", "p", "", "properties: key=value;key2=value2 ($.mid, $.cid, $.ct, $.ce, $.uid, $.exp are system properties)")
	fs.IntVar(&count, "msg-count", 1, "how many times to send the message")
	fs.IntVar(&qos, "qos", 1, "accepted for compatibility and ignored (messages go over HTTPS)")
	fs.StringVar(&key, "key", "", "the device's symmetric key (default: read from the registry)")
	addAlias(fs, "props", "properties")
	addAlias(fs, "data", "da")
	addAlias(fs, "msg-count", "mc")
	addAlias(fs, "data-file-path", "dfp")
	addAlias(fs, "key", "symmetric-key")
	return cmd
}

// send posts one telemetry message.
func (s *simulatedDevice) send(ctx context.Context, payload []byte, h http.Header) error {
	auth, err := s.auth()
	if err != nil {
		return err
	}
	h = h.Clone()
	h.Set("iothub-to", "/devices/"+url.PathEscape(s.id)+"/messages/events")
	_, _, err = s.hub.do(ctx, hubRequest{method: http.MethodPost, path: devicePath(s.id) + "/messages/events",
		header: h, raw: payload, auth: auth})
	return err
}

func newUploadFileCommand() *cobra.Command {
	var (
		d                      deviceFlags
		path, contentType, key string
	)
	cmd := &cobra.Command{
		Use:   "upload-file --hub-name NAME --device-id ID --file-path PATH --content-type TYPE",
		Short: "Upload a file as the device through the hub's file upload",
		Long: "Upload a file as the device, as `az iot device upload-file` does: ask the hub for a blob SAS\n" +
			"URI (POST files), PUT the file to it, and tell the hub how it went (POST files/notifications),\n" +
			"which queues a file upload notification when the hub has them on.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := d.need(cmd); err != nil {
				return err
			}
			if err := requireFlags(cmd, "file-path", "content-type"); err != nil {
				return err
			}
			content, err := os.ReadFile(path)
			if err != nil {
				if os.IsNotExist(err) {
					return usageErrorf("File path %q does not exist!", path)
				}
				return fmt.Errorf("read --file-path: %w", err)
			}
			dev, err := deviceFor(cmd, d, key)
			if err != nil {
				return err
			}
			return dev.uploadFile(cmd.Context(), filepath.Base(path), content, contentType)
		},
	}
	d.register(cmd)
	fs := cmd.Flags()
	fs.StringVar(&path, "file-path", "", "file to upload (its base name is the blob name asked for)")
	fs.StringVar(&contentType, "content-type", "", "MIME type of the file")
	fs.StringVar(&key, "key", "", "the device's symmetric key (default: read from the registry)")
	addAlias(fs, "file-path", "fp")
	addAlias(fs, "content-type", "ct")
	return cmd
}

// fileUploadSAS is the hub's answer to POST /devices/{id}/files.
type fileUploadSAS struct {
	CorrelationID string `json:"correlationId"`
	HostName      string `json:"hostName"`
	ContainerName string `json:"containerName"`
	BlobName      string `json:"blobName"`
	SASToken      string `json:"sasToken"`
}

func (s *simulatedDevice) uploadFile(ctx context.Context, name string, content []byte, contentType string) error {
	auth, err := s.auth()
	if err != nil {
		return err
	}
	var up fileUploadSAS
	if err := s.hub.doJSON(ctx, hubRequest{method: http.MethodPost, path: devicePath(s.id) + "/files",
		body: map[string]string{"blobName": name}, auth: auth}, &up); err != nil {
		return err
	}
	status, reason, putErr := s.putBlob(ctx, up, content, contentType)
	// The extension notifies only after a successful PUT; telling the hub
	// about a failed one too (as the device SDKs do) frees the upload slot
	// at once instead of when its SAS expires.
	notice := map[string]any{"correlationId": up.CorrelationID, "isSuccess": putErr == nil,
		"statusCode": status, "statusDescription": reason}
	_, _, err = s.hub.do(ctx, hubRequest{method: http.MethodPost, path: devicePath(s.id) + "/files/notifications",
		body: notice, auth: auth})
	if putErr != nil {
		return putErr
	}
	return err
}

// putBlob PUTs the file to the SAS URI the hub gave, as the extension's
// upload_file_to_container does (one Put Blob with its content type).
func (s *simulatedDevice) putBlob(ctx context.Context, up fileUploadSAS, content []byte, contentType string) (int, string, error) {
	segments := strings.Split(up.BlobName, "/")
	for i, seg := range segments {
		segments[i] = url.PathEscape(seg)
	}
	u := "https://" + up.HostName + "/" + url.PathEscape(up.ContainerName) + "/" + strings.Join(segments, "/") + up.SASToken
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(content))
	if err != nil {
		return 0, "", fmt.Errorf("the hub's blob SAS URI: %w", err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("x-ms-blob-type", "BlockBlob")
	req.Header.Set("x-ms-blob-content-type", contentType)
	resp, err := s.hub.http.Do(req)
	if err != nil {
		return 500, "Failed to upload to blob.", fmt.Errorf("upload to %s: %w", up.HostName, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	reason := strings.TrimSpace(strings.TrimPrefix(resp.Status, fmt.Sprint(resp.StatusCode)))
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		e := errorFrom(resp.StatusCode, resp.Status, b)
		if code := resp.Header.Get("x-ms-error-code"); code != "" && e.Code == "" {
			e.Code, e.Message = code, "the blob upload failed: "+resp.Status
		}
		return resp.StatusCode, reason, e
	}
	return resp.StatusCode, reason, nil
}
