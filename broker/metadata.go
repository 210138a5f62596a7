package broker

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
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
	metadataName       = "metadata.json"
	producerIDBlock    = 1000
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

// metadata is what metadata.json holds.
type metadata struct {
	Version         int             `json:"version"`
	ProducerIDLimit int64           `json:"producer_id_limit"`
	Topics          []topicMetadata `json:"topics"`
}

type topicMetadata struct {
	Name       string            `json:"name"`
	ID         string            `json:"id"`
	Partitions int32             `json:"partitions"`
	Configs    map[string]string `json:"configs,omitempty"`
}

func loadMetadata(dir string) (metadata, error) {
	path := filepath.Join(dir, metadataName)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return metadata{Version: 1}, nil
	}
	if err != nil {
		return metadata{}, fmt.Errorf("broker: read %s: %w", path, err)
	}
	var m metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return metadata{}, fmt.Errorf("broker: %s is damaged: %w", path, err)
	}
	return m, nil
}

func saveMetadata(dir string, m metadata) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	if err := storage.WriteFileAtomic(storage.OSFS{}, filepath.Join(dir, metadataName), b); err != nil {
		return fmt.Errorf("broker: save metadata: %w", err)
	}
	return nil
}

func newTopicID() [16]byte {
	var id [16]byte
	_, _ = rand.Read(id[:])
	id[6] = id[6]&0x0f | 0x40 // a v4 UUID, as Kafka's topic ids are
	id[8] = id[8]&0x3f | 0x80
	return id
}

func parseTopicID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, fmt.Errorf("broker: bad topic id %q", s)
	}
	copy(id[:], b)
	return id, nil
}
