package live

import (
	"hash/fnv"
	"strconv"
)

// Channels is how many signal channels there are. Each domain's signals
// travel on one of them (ChannelOf), so a node hears every domain with
// Channels subscriptions, whatever the number of domains, and one domain's
// signals keep their order. On a Redis Cluster they are sharded channels
// (SPUBLISH, SSUBSCRIBE) spread evenly over the hash slots, so the signal
// traffic spreads over the shards.
const Channels = 16

// ChannelOf is the channel that carries domain's signals: FNV-1a of the
// name, the same on every node.
func ChannelOf(domain string) int {
	h := fnv.New32a()
	h.Write([]byte(domain))
	return int(h.Sum32() % Channels)
}

// channelNames are the Redis names of the channels. Channel i's name has a
// hash tag chosen so that its slot falls in the i-th sixteenth of the 16384
// slots: a cluster that splits the slots into ranges (as redis-cli --cluster
// create does) gets its share of channels. Computed once, never written.
var channelNames = func() (names [Channels]string) {
	const slots, per = 16384, 16384 / Channels
	for i := range names {
		for k := 0; ; k++ {
			tag := strconv.Itoa(i) + "." + strconv.Itoa(k)
			if int(crc16(tag)%slots)/per == i {
				names[i] = "ig:sig:{" + tag + "}"
				break
			}
		}
	}
	return names
}()

// ChannelName is channel c's name in Redis.
func ChannelName(c int) string { return channelNames[c] }

// activityKey is the Redis hash of a domain's last activity: field session
// id, value the milliseconds of Redis's TIME. {domain} is its hash tag, so
// a domain's keys live on one shard.
func activityKey(domain string) string { return "ig:{" + domain + "}:last" }

// crc16 is CRC-16/XMODEM, the hash Redis Cluster takes modulo 16384 for a
// key's slot.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
