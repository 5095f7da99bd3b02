package webhook

import (
	"bytes"
	"reflect"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"
	"github.com/kommo-operator/kommo-operator/test/testenv"
)

// The webhook decides the same on its cache's view of an installation as on the whole
// object, and the view holds none of the controller's status beyond the receipt times.
func TestInstallationViewKeepsWhatTheWebhookReads(t *testing.T) {
	ready := testenv.ReadyInstallation(t)
	ready.ManagedFields = []metav1.ManagedFieldsEntry{{Manager: "kommo-operator", Operation: metav1.ManagedFieldsOperationApply}}
	later := metav1.NewMicroTime(ready.Spec.Authorization.ReceivedAt.Add(time.Minute))

	reinstalled := ready.DeepCopy() // a new install the controller has not processed
	reinstalled.Spec.Authorization.ReceivedAt = later
	reinstalled.Spec.Authorization.CodeSecretRef.Name = "kommo-code-next"
	failed := reinstalled.DeepCopy() // ... and then could not exchange
	failed.Status.LastAttempt = &kommov1.Outcome{ReceivedAt: later, Result: kommov1.OutcomeFailed, Reason: "InvalidGrant", Time: metav1.Now()}
	revoked := ready.DeepCopy()
	revoked.Spec.Revocation = &kommov1.Revocation{ReceivedAt: later, AccountID: "89336339", ClientUUID: testClientID, Signature: "00"}
	revoked.Status.LastRevocation = &kommov1.Outcome{ReceivedAt: later, Result: kommov1.OutcomeRevoked, Time: metav1.Now()}

	in := install{secretName: "kommo-code-new", receivedAt: ready.Spec.Authorization.ReceivedAt.Time}
	for name, whole := range map[string]*kommov1.KommoInstallation{
		"ready": ready, "reinstalled": reinstalled, "failed": failed, "revoked": revoked,
	} {
		t.Run(name, func(t *testing.T) {
			v, err := installationView(whole.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			view := v.(*kommov1.KommoInstallation)
			if got, want := awaitsProcessing(view), awaitsProcessing(whole); got != want {
				t.Errorf("awaitsProcessing: %v on the view, %v on the object", got, want)
			}
			got, err := authorizationPatch(view, in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := authorizationPatch(whole, in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("authorization patch on the view:\n%s\non the object:\n%s", got, want)
			}
			if !reflect.DeepEqual(view.Spec, whole.Spec) || !reflect.DeepEqual(view.Labels, whole.Labels) ||
				!reflect.DeepEqual(view.Finalizers, whole.Finalizers) || view.Name != whole.Name {
				t.Errorf("the view changed the metadata or the spec: %+v", view)
			}
			if last := whole.Status.LastRevocation; last != nil &&
				(view.Status.LastRevocation == nil || !view.Status.LastRevocation.ReceivedAt.Equal(&last.ReceivedAt)) {
				t.Errorf("lastRevocation.receivedAt lost: %+v", view.Status.LastRevocation)
			}
			if view.ManagedFields != nil || view.Status.Conditions != nil || view.Status.ConnectedChannel != nil ||
				view.Status.Sources != nil || view.Status.ScopeID != "" || view.Status.LastAttempt.Message != "" {
				t.Errorf("the view keeps what the webhook never reads: %+v", view.Status)
			}
		})
	}
}
