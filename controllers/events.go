package controllers

import kommov1 "github.com/kommo-operator/kommo-operator/api/v1alpha1"

// Event reasons. Events are raised only for transitions someone may act on.
const (
	eventInstalled          = "Installed"
	eventReinstalled        = "Reinstalled"
	eventInstallFailed      = "InstallFailed"
	eventRevoked            = "Revoked"
	eventRevocationIgnored  = "RevocationIgnored"
	eventInvalidClient      = "InvalidClient"
	eventReinstallRequired  = "ReinstallRequired"
	eventChannelRejected    = "ChannelRejected"
	eventTokenExpiring      = "TokenExpiring"
	eventBlocked            = "Blocked"
	eventAccountRenamed     = "AccountRenamed"
	eventDisconnected       = "ChannelDisconnected"
	eventDisconnectFailed   = "DisconnectFailed"
	eventFailedInstallGone  = "FailedInstallCollected"
	eventTokenSecretMissing = "TokenSecretMissing"
)

// actionableFailures are the Kommo failures worth a Warning event, by condition reason.
var actionableFailures = map[string]string{
	kommov1.ReasonInvalidClient:    eventInvalidClient,
	kommov1.ReasonBlocked:          eventBlocked,
	kommov1.ReasonInvalidSignature: eventChannelRejected,
	kommov1.ReasonChannelNotFound:  eventChannelRejected,
}
