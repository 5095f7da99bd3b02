package controllers

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func TestOwnWritesTellWhenTheCacheIsBehind(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(rv string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "a", ResourceVersion: rv}}
	}
	var w ownWrites
	if w.behind(at("5"), now) {
		t.Error("behind with no write recorded")
	}
	w.wrote(at("100"), now)
	if !w.behind(at("99"), now) || !w.behind(at("99"), now.Add(ownWritesPatience-time.Second)) {
		t.Error("a cache older than the write is not behind")
	}
	if w.behind(at("100"), now) {
		t.Error("a cache at the write is behind")
	}
	if w.behind(at("99"), now) {
		t.Error("the write was not forgotten once the cache caught up")
	}

	w.wrote(at("100"), now)
	if w.behind(at("101"), now) {
		t.Error("a cache newer than the write (someone else wrote since) is behind")
	}
	w.wrote(at("100"), now)
	if w.behind(at("99"), now.Add(ownWritesPatience)) {
		t.Error("still behind after the patience ran out (an etcd restored from backup would stall the installation)")
	}
	w.wrote(at("100"), now)
	if w.behind(at("not-a-number"), now) {
		t.Error("behind on a resourceVersion that does not compare")
	}
	w.wrote(at("100"), now)
	w.forget(client.ObjectKeyFromObject(at("100")))
	if w.behind(at("99"), now) {
		t.Error("behind after the write was forgotten")
	}
}
