package identity

import "crypto/rsa"

// ActiveKeyForTest exposes the key that signs new tokens, so the security
// tests can forge tokens the Issuer would never mint (a future nbf, another
// tenant's tid, a foreign issuer) and still carry a valid signature: the
// Validator must refuse them for the claim, not for the signature.
func (k *KeyRing) ActiveKeyForTest() (kid string, key *rsa.PrivateKey) {
	sk, err := k.active()
	if err != nil {
		panic(err)
	}
	return sk.kid, sk.private
}
