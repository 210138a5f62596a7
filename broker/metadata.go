package broker

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mlog/mlog/storage"
)

// ErrWrongNode means the data directory belongs to another node.
var ErrWrongNode = errors.New("broker: data directory belongs to another node")

const (
	metaPropertiesName = "meta.properties"
)

// identity reads or writes meta.properties: the node id and cluster id,
// written once when the data directory is first used.
func identity(dir, nodeID string) (clusterID string, err error) {
	path := filepath.Join(dir, metaPropertiesName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		clusterID = newClusterID()
		data := fmt.Sprintf("version=1\nnode.id=%s\ncluster.id=%s\n", nodeID, clusterID)
		return clusterID, storage.WriteFileAtomic(storage.OSFS{}, path, []byte(data))
	}
	if err != nil {
		return "", fmt.Errorf("broker: read %s: %w", path, err)
	}
	props := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok {
			props[k] = v
		}
	}
	if props["node.id"] != nodeID {
		return "", fmt.Errorf("%w: %s says node.id=%q, this is %q", ErrWrongNode, path, props["node.id"], nodeID)
	}
	if props["cluster.id"] == "" {
		return "", fmt.Errorf("broker: %s has no cluster.id", path)
	}
	return props["cluster.id"], nil
}

func newClusterID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func newTopicID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // a v4 UUID, as Kafka's topic ids are
	id[8] = id[8]&0x3f | 0x80
	return id
}
