/* p11_stubs.c: the PKCS#11 v2.40 functions the card does not offer. Generated
 * from the declarations of p11-kit's pkcs11.h by ctest/stubs_test.go
 * (go test ./pkcs11shim/c/ctest -run TestStubs -update-stubs); each checks
 * C_Initialize first. */
#include "p11.h"

CK_RV C_InitToken(CK_SLOT_ID slot_id, CK_BYTE_PTR pin, CK_ULONG pin_len, CK_BYTE_PTR label)
{
	(void)slot_id;
	(void)pin;
	(void)pin_len;
	(void)label;
	return p11_not_supported("C_InitToken");
}

CK_RV C_GetOperationState(CK_SESSION_HANDLE session, CK_BYTE_PTR operation_state, CK_ULONG_PTR operation_state_len)
{
	(void)session;
	(void)operation_state;
	(void)operation_state_len;
	return p11_not_supported("C_GetOperationState");
}

CK_RV C_SetOperationState(CK_SESSION_HANDLE session, CK_BYTE_PTR operation_state, CK_ULONG operation_state_len, CK_OBJECT_HANDLE encryption_key, CK_OBJECT_HANDLE authentication_key)
{
	(void)session;
	(void)operation_state;
	(void)operation_state_len;
	(void)encryption_key;
	(void)authentication_key;
	return p11_not_supported("C_SetOperationState");
}

CK_RV C_EncryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key)
{
	(void)session;
	(void)mechanism;
	(void)key;
	return p11_not_supported("C_EncryptInit");
}

CK_RV C_Encrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR encrypted_data, CK_ULONG_PTR encrypted_data_len)
{
	(void)session;
	(void)data;
	(void)data_len;
	(void)encrypted_data;
	(void)encrypted_data_len;
	return p11_not_supported("C_Encrypt");
}

CK_RV C_EncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR encrypted_part, CK_ULONG_PTR encrypted_part_len)
{
	(void)session;
	(void)part;
	(void)part_len;
	(void)encrypted_part;
	(void)encrypted_part_len;
	return p11_not_supported("C_EncryptUpdate");
}

CK_RV C_EncryptFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR last_encrypted_part, CK_ULONG_PTR last_encrypted_part_len)
{
	(void)session;
	(void)last_encrypted_part;
	(void)last_encrypted_part_len;
	return p11_not_supported("C_EncryptFinal");
}

CK_RV C_DecryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key)
{
	(void)session;
	(void)mechanism;
	(void)key;
	return p11_not_supported("C_DecryptInit");
}

CK_RV C_Decrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted_data, CK_ULONG encrypted_data_len, CK_BYTE_PTR data, CK_ULONG_PTR data_len)
{
	(void)session;
	(void)encrypted_data;
	(void)encrypted_data_len;
	(void)data;
	(void)data_len;
	return p11_not_supported("C_Decrypt");
}

CK_RV C_DecryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted_part, CK_ULONG encrypted_part_len, CK_BYTE_PTR part, CK_ULONG_PTR part_len)
{
	(void)session;
	(void)encrypted_part;
	(void)encrypted_part_len;
	(void)part;
	(void)part_len;
	return p11_not_supported("C_DecryptUpdate");
}

CK_RV C_DecryptFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR last_part, CK_ULONG_PTR last_part_len)
{
	(void)session;
	(void)last_part;
	(void)last_part_len;
	return p11_not_supported("C_DecryptFinal");
}

CK_RV C_SignRecoverInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key)
{
	(void)session;
	(void)mechanism;
	(void)key;
	return p11_not_supported("C_SignRecoverInit");
}

CK_RV C_SignRecover(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len, CK_BYTE_PTR signature, CK_ULONG_PTR signature_len)
{
	(void)session;
	(void)data;
	(void)data_len;
	(void)signature;
	(void)signature_len;
	return p11_not_supported("C_SignRecover");
}

CK_RV C_VerifyRecoverInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE key)
{
	(void)session;
	(void)mechanism;
	(void)key;
	return p11_not_supported("C_VerifyRecoverInit");
}

CK_RV C_VerifyRecover(CK_SESSION_HANDLE session, CK_BYTE_PTR signature, CK_ULONG signature_len, CK_BYTE_PTR data, CK_ULONG_PTR data_len)
{
	(void)session;
	(void)signature;
	(void)signature_len;
	(void)data;
	(void)data_len;
	return p11_not_supported("C_VerifyRecover");
}

CK_RV C_DigestEncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR encrypted_part, CK_ULONG_PTR encrypted_part_len)
{
	(void)session;
	(void)part;
	(void)part_len;
	(void)encrypted_part;
	(void)encrypted_part_len;
	return p11_not_supported("C_DigestEncryptUpdate");
}

CK_RV C_DecryptDigestUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted_part, CK_ULONG encrypted_part_len, CK_BYTE_PTR part, CK_ULONG_PTR part_len)
{
	(void)session;
	(void)encrypted_part;
	(void)encrypted_part_len;
	(void)part;
	(void)part_len;
	return p11_not_supported("C_DecryptDigestUpdate");
}

CK_RV C_SignEncryptUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len, CK_BYTE_PTR encrypted_part, CK_ULONG_PTR encrypted_part_len)
{
	(void)session;
	(void)part;
	(void)part_len;
	(void)encrypted_part;
	(void)encrypted_part_len;
	return p11_not_supported("C_SignEncryptUpdate");
}

CK_RV C_DecryptVerifyUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR encrypted_part, CK_ULONG encrypted_part_len, CK_BYTE_PTR part, CK_ULONG_PTR part_len)
{
	(void)session;
	(void)encrypted_part;
	(void)encrypted_part_len;
	(void)part;
	(void)part_len;
	return p11_not_supported("C_DecryptVerifyUpdate");
}

CK_RV C_GenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_ATTRIBUTE_PTR templ, CK_ULONG count, CK_OBJECT_HANDLE_PTR key)
{
	(void)session;
	(void)mechanism;
	(void)templ;
	(void)count;
	(void)key;
	return p11_not_supported("C_GenerateKey");
}

CK_RV C_WrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key, CK_BYTE_PTR wrapped_key, CK_ULONG_PTR wrapped_key_len)
{
	(void)session;
	(void)mechanism;
	(void)wrapping_key;
	(void)key;
	(void)wrapped_key;
	(void)wrapped_key_len;
	return p11_not_supported("C_WrapKey");
}

CK_RV C_UnwrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR wrapped_key, CK_ULONG wrapped_key_len, CK_ATTRIBUTE_PTR templ, CK_ULONG attribute_count, CK_OBJECT_HANDLE_PTR key)
{
	(void)session;
	(void)mechanism;
	(void)unwrapping_key;
	(void)wrapped_key;
	(void)wrapped_key_len;
	(void)templ;
	(void)attribute_count;
	(void)key;
	return p11_not_supported("C_UnwrapKey");
}

CK_RV C_DeriveKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism, CK_OBJECT_HANDLE base_key, CK_ATTRIBUTE_PTR templ, CK_ULONG attribute_count, CK_OBJECT_HANDLE_PTR key)
{
	(void)session;
	(void)mechanism;
	(void)base_key;
	(void)templ;
	(void)attribute_count;
	(void)key;
	return p11_not_supported("C_DeriveKey");
}

CK_RV C_GetFunctionStatus(CK_SESSION_HANDLE session)
{
	(void)session;
	return p11_not_parallel("C_GetFunctionStatus");
}

CK_RV C_CancelFunction(CK_SESSION_HANDLE session)
{
	(void)session;
	return p11_not_parallel("C_CancelFunction");
}
