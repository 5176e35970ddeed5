// Package p11 names the PKCS#11 v2.40 numbers (OASIS PKCS#11 Base
// Specification v2.40, §2–§6 and the Current Mechanisms Specification) that
// the service, its Go client, the CLI and the module share: object classes,
// key types, attributes, mechanisms. They are the wire protocol's numbers
// too, so a value is written here once.
package p11

// Object classes (CKO_*).
const (
	CKOCertificate = 0x1
	CKOPublicKey   = 0x2
	CKOPrivateKey  = 0x3
)

// Key types (CKK_*).
const (
	CKKRSA = 0x0
	CKKEC  = 0x3
)

// Certificate types (CKC_*).
const CKCX509 = 0x0

// Attributes (CKA_*).
const (
	CKAClass              = 0x000
	CKAToken              = 0x001
	CKAPrivate            = 0x002
	CKALabel              = 0x003
	CKAValue              = 0x011
	CKACertificateType    = 0x080
	CKAIssuer             = 0x081
	CKASerialNumber       = 0x082
	CKAKeyType            = 0x100
	CKASubject            = 0x101
	CKAID                 = 0x102
	CKASensitive          = 0x103
	CKAEncrypt            = 0x104
	CKADecrypt            = 0x105
	CKAWrap               = 0x106
	CKAUnwrap             = 0x107
	CKASign               = 0x108
	CKASignRecover        = 0x109
	CKAVerify             = 0x10a
	CKAVerifyRecover      = 0x10b
	CKADerive             = 0x10c
	CKAModulus            = 0x120
	CKAModulusBits        = 0x121
	CKAPublicExponent     = 0x122
	CKAPrivateExponent    = 0x123
	CKAPrime1             = 0x124
	CKAPrime2             = 0x125
	CKAExponent1          = 0x126
	CKAExponent2          = 0x127
	CKACoefficient        = 0x128
	CKAPublicKeyInfo      = 0x129
	CKAExtractable        = 0x162
	CKALocal              = 0x163
	CKANeverExtractable   = 0x164
	CKAAlwaysSensitive    = 0x165
	CKAModifiable         = 0x170
	CKAECParams           = 0x180
	CKAECPoint            = 0x181
	CKAAlwaysAuthenticate = 0x202
)

// Mechanisms (CKM_*).
const (
	CKMRSAPKCSKeyPairGen = 0x0000
	CKMRSAPKCS           = 0x0001
	CKMRSAPKCSPSS        = 0x000d
	CKMSHA256RSAPKCS     = 0x0040
	CKMSHA384RSAPKCS     = 0x0041
	CKMSHA512RSAPKCS     = 0x0042
	CKMSHA256RSAPKCSPSS  = 0x0043
	CKMSHA384RSAPKCSPSS  = 0x0044
	CKMSHA512RSAPKCSPSS  = 0x0045
	CKMSHA256            = 0x0250
	CKMSHA384            = 0x0260
	CKMSHA512            = 0x0270
	CKMECKeyPairGen      = 0x1040
	CKMECDSA             = 0x1041
	CKMECDSASHA256       = 0x1044
	CKMECDSASHA384       = 0x1045
	CKMECDSASHA512       = 0x1046
)

// Mask generation functions (CKG_*).
const (
	CKGMGF1SHA1   = 0x1
	CKGMGF1SHA256 = 0x2
	CKGMGF1SHA384 = 0x3
	CKGMGF1SHA512 = 0x4
)

// More attributes (CKA_*).
const (
	CKAKeyGenMechanism = 0x166
	CKACopyable        = 0x171
	CKADestroyable     = 0x172
)

// More mechanisms (CKM_*).
const (
	CKMSHA1 = 0x0220
)

// Mechanism flags (CKF_*, CK_MECHANISM_INFO).
const (
	CKFHW              = 0x00000001
	CKFSign            = 0x00000800
	CKFGenerateKeyPair = 0x00010000
	CKFECFp            = 0x00100000
	CKFECNamedCurve    = 0x00800000
	CKFECUncompress    = 0x01000000
)

// Certificate attributes (CKA_*, PKCS#11 v2.40 §4.6).
const (
	CKATrusted                = 0x086
	CKACertificateCategory    = 0x087
	CKAJavaMIDPSecurityDomain = 0x088
	CKAURL                    = 0x089
	CKAHashOfSubjectPublicKey = 0x08a
	CKAHashOfIssuerPublicKey  = 0x08b
	CKACheckValue             = 0x090
	CKAStartDate              = 0x110
	CKAEndDate                = 0x111
)

// Certificate categories (CK_CERTIFICATE_CATEGORY).
const CKCertificateCategoryTokenUser = 1
