package cluster

// Configs changed without a restart (IncrementalAlterConfigs,
// AlterConfigs): a topic's configs, and dynamic broker configs for one
// broker or, under the name "", the cluster-wide default. The broker layer
// computes and checks the new set; the command replaces it whole.

import (
	"context"
	"fmt"
	"maps"
)

// CmdAlterConfigs is AlterConfigs' command type.
const CmdAlterConfigs = "alter_configs"

// Config resource kinds of AlterConfigs.
const (
	ConfigTopic  = "topic"
	ConfigBroker = "broker"
)

// AlterConfigs replaces a resource's configs: a topic's, or the dynamic
// configs of broker Name (a broker id, or "" for the cluster default).
type AlterConfigs struct {
	Resource string            `json:"resource"`
	Name     string            `json:"name"`
	Configs  map[string]string `json:"configs,omitempty"`
}

func (d *draft) applyAlterConfigs(a AlterConfigs) error {
	switch a.Resource {
	case ConfigTopic:
		if _, ok := d.Topics[a.Name]; !ok {
			return fmt.Errorf("%w: %q", ErrUnknownTopic, a.Name)
		}
		d.topic(a.Name).Configs = maps.Clone(a.Configs)
	case ConfigBroker:
		bc := maps.Clone(d.BrokerConfigs)
		if bc == nil {
			bc = map[string]map[string]string{}
		}
		if len(a.Configs) == 0 {
			delete(bc, a.Name)
		} else {
			bc[a.Name] = maps.Clone(a.Configs)
		}
		d.BrokerConfigs = bc
	default:
		return fmt.Errorf("%w: config resource %q", ErrBadCommand, a.Resource)
	}
	return nil
}

// AlterConfigs replaces a resource's configs. Controller only.
func (c *Controller) AlterConfigs(ctx context.Context, a AlterConfigs) error {
	_, err := c.node.Apply(ctx, CmdAlterConfigs, a)
	return err
}

// BrokerConfig is a dynamic broker config's value for broker id: its own,
// else the cluster default; false when neither is set.
func (s *State) BrokerConfig(id string, name string) (string, bool) {
	if v, ok := s.BrokerConfigs[id][name]; ok {
		return v, true
	}
	v, ok := s.BrokerConfigs[""][name]
	return v, ok
}

// CmdSetClusterID names a cluster that has no id yet.
const CmdSetClusterID = "set_cluster_id"

// SetClusterID is the id the first controller gives the cluster; a
// cluster that has one keeps it.
type SetClusterID struct {
	ID string `json:"id"`
}
