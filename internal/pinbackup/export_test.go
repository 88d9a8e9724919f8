package pinbackup

// Internals for the external tests (the offline-guessing test needs the
// exact derivations to attack what a realm stores).
var (
	UnlockKeyOf        = unlockKey
	UnlockTagOf        = unlockTag
	SecretCommitmentOf = secretCommitment
	EncryptionKeyOf    = encryptionKey
	SecretADOf         = secretAD
)
