package blob

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/outpost-iot/outpost/internal/targets/access"
)

const defaultMaxResults = 5000

func maxResults(v string) (int, error) {
	if v == "" {
		return defaultMaxResults, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, errInvalidQuery("maxresults", v, "use a number from 1 to 5000")
	}
	if n > defaultMaxResults {
		n = defaultMaxResults
	}
	return n, nil
}

// nameXML is a blob name; names with characters XML 1.0 cannot carry are
// sent URL-encoded with Encoded="true", as Azure does.
type nameXML struct {
	Encoded bool   `xml:"Encoded,attr,omitempty"`
	Value   string `xml:",chardata"`
}

func xmlName(s string) nameXML {
	for _, r := range s {
		if !(r == 0x9 || r == 0xA || r == 0xD || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) || r == utf8.RuneError {
			return nameXML{Encoded: true, Value: url.QueryEscape(s)}
		}
	}
	return nameXML{Value: s}
}

type blobPropertiesXML struct {
	CreationTime       string `xml:"Creation-Time"`
	LastModified       string `xml:"Last-Modified"`
	Etag               string `xml:"Etag"`
	ContentLength      int64  `xml:"Content-Length"`
	ContentType        string `xml:"Content-Type"`
	ContentEncoding    string `xml:"Content-Encoding"`
	ContentLanguage    string `xml:"Content-Language"`
	ContentMD5         string `xml:"Content-MD5"`
	ContentDisposition string `xml:"Content-Disposition"`
	CacheControl       string `xml:"Cache-Control"`
	BlobType           string `xml:"BlobType"`
	AccessTier         string `xml:"AccessTier,omitempty"`
	AccessTierInferred bool   `xml:"AccessTierInferred,omitempty"`
	LeaseStatus        string `xml:"LeaseStatus"`
	LeaseState         string `xml:"LeaseState"`
	ServerEncrypted    bool   `xml:"ServerEncrypted"`
}

type blobXML struct {
	Name       nameXML           `xml:"Name"`
	Properties blobPropertiesXML `xml:"Properties"`
	Metadata   metadataXML       `xml:"Metadata,omitempty"`
}

// listItem is a <Blob> or a <BlobPrefix>, in name order.
type listItem struct {
	Blob   *blobXML
	Prefix *struct {
		Name nameXML `xml:"Name"`
	}
}

func (li listItem) MarshalXML(e *xml.Encoder, _ xml.StartElement) error {
	if li.Blob != nil {
		return e.EncodeElement(li.Blob, xml.StartElement{Name: xml.Name{Local: "Blob"}})
	}
	return e.EncodeElement(li.Prefix, xml.StartElement{Name: xml.Name{Local: "BlobPrefix"}})
}

func (h *Handler) listBlobs(ctx context.Context, rq *request, _ *access.Caller) error {
	if _, err := h.container(ctx, rq); err != nil {
		return err
	}
	q := rq.r.URL.Query()
	prefix, delim, marker := q.Get("prefix"), q.Get("delimiter"), q.Get("marker")
	max, err := maxResults(q.Get("maxresults"))
	if err != nil {
		return err
	}
	withMeta := false
	for _, inc := range strings.Split(strings.ToLower(q.Get("include")), ",") {
		if strings.TrimSpace(inc) == "metadata" {
			withMeta = true
		}
	}
	blobs, err := h.cfg.Blobs.list(rq.account.Name, rq.container, prefix)
	if err != nil {
		return err
	}
	out := struct {
		XMLName         xml.Name   `xml:"EnumerationResults"`
		ServiceEndpoint string     `xml:"ServiceEndpoint,attr"`
		ContainerName   string     `xml:"ContainerName,attr"`
		Prefix          string     `xml:"Prefix,omitempty"`
		Marker          string     `xml:"Marker,omitempty"`
		MaxResults      int        `xml:"MaxResults,omitempty"`
		Delimiter       string     `xml:"Delimiter,omitempty"`
		Items           []listItem `xml:"Blobs>Item"`
		NextMarker      string     `xml:"NextMarker"`
	}{ServiceEndpoint: endpoint(rq), ContainerName: rq.container, Prefix: prefix, Marker: marker, Delimiter: delim}
	if q.Get("maxresults") != "" {
		out.MaxResults = max
	}
	out.Items = []listItem{}
	lastPrefix := ""
	for _, m := range blobs {
		// The marker is the name of the first entry not yet returned.
		if m.Name < marker {
			continue
		}
		group := ""
		if delim != "" {
			if i := strings.Index(m.Name[len(prefix):], delim); i >= 0 {
				group = m.Name[:len(prefix)+i+len(delim)]
			}
		}
		if group != "" && group == lastPrefix {
			continue
		}
		if len(out.Items) == max {
			out.NextMarker = m.Name
			if group != "" {
				out.NextMarker = group
			}
			break
		}
		if group != "" {
			lastPrefix = group
			p := &struct {
				Name nameXML `xml:"Name"`
			}{Name: xmlName(group)}
			out.Items = append(out.Items, listItem{Prefix: p})
			continue
		}
		b := &blobXML{Name: xmlName(m.Name), Properties: blobPropertiesXML{
			CreationTime: httpTime(m.Created), LastModified: httpTime(m.Modified), Etag: unquoteETag(m.ETag),
			ContentLength: m.Size, ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
			ContentLanguage: m.ContentLanguage, ContentDisposition: m.ContentDisposition, CacheControl: m.CacheControl,
			BlobType: m.Type, LeaseStatus: "unlocked", LeaseState: "available", ServerEncrypted: true,
		}}
		if m.ContentMD5 != nil {
			b.Properties.ContentMD5 = base64.StdEncoding.EncodeToString(m.ContentMD5)
		}
		if m.Type == "BlockBlob" {
			b.Properties.AccessTier, b.Properties.AccessTierInferred = "Hot", true
		}
		if withMeta {
			b.Metadata = metadataXML(m.Metadata)
			if b.Metadata == nil {
				b.Metadata = metadataXML{}
			}
		}
		out.Items = append(out.Items, listItem{Blob: b})
	}
	return writeXML(rq.w, http.StatusOK, out)
}
