package app

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/uuid"
)

// nodeIDFile keeps a node's identity in its data directory: leases (ARM
// operations) name their holder by it, and a restarted node is the same
// node, so it resumes its own work at once.
const nodeIDFile = "node-id"

// loadNodeID reads the node's id, creating it on first start.
func loadNodeID(dataDir string) (string, error) {
	path := filepath.Join(dataDir, nodeIDFile)
	b, err := os.ReadFile(path)
	if err == nil {
		if id := strings.TrimSpace(string(b)); id != "" {
			return id, nil
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("app: read %s: %w", path, err)
	}
	id := uuid.NewString()
	if err := os.WriteFile(path, []byte(id+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("app: write %s: %w", path, err)
	}
	return id, nil
}
