package controllers

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/resourceversion"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// ownWritesPatience is how long a pass waits for the cache to show its predecessor's
// write before it goes on regardless (and reads the API server if it must): the cache
// may never catch up, e.g. after etcd was restored from a backup.
const ownWritesPatience = 10 * time.Second

// ownWrites remembers the latest resourceVersion this process wrote of each object, so
// that a pass can tell, without a request, that the cache has not seen its predecessor's
// write yet. (The pass that follows a write is often woken by that write's own watch
// event, such as the token Secret's, before the cache has the status written after it.)
// Resource versions are comparable integers since Kubernetes 1.35.
type ownWrites struct {
	versions sync.Map // client.ObjectKey → ownWrite
}

type ownWrite struct {
	version string
	at      time.Time
}

// wrote records obj as written at its current resourceVersion.
func (w *ownWrites) wrote(obj client.Object, now time.Time) {
	w.versions.Store(client.ObjectKeyFromObject(obj), ownWrite{obj.GetResourceVersion(), now})
}

// behind reports whether cached is older than this process's last write of it. Once the
// cache has caught up, or after ownWritesPatience, the write is forgotten.
func (w *ownWrites) behind(cached client.Object, now time.Time) bool {
	key := client.ObjectKeyFromObject(cached)
	v, ok := w.versions.Load(key)
	if !ok {
		return false
	}
	c, err := resourceversion.CompareResourceVersion(cached.GetResourceVersion(), v.(ownWrite).version)
	if err == nil && c < 0 && now.Sub(v.(ownWrite).at) < ownWritesPatience {
		return true
	}
	w.versions.CompareAndDelete(key, v)
	return false
}

// forget drops what was recorded of key: the object is gone.
func (w *ownWrites) forget(key client.ObjectKey) { w.versions.Delete(key) }
