// TestCertificates::Generate(): a throwaway CA plus server certificates for
// TLS tests of the fake OpenRouter, made with the OpenSSL 3 API (EC P-256
// keys, X.509 v3, SHA-256 signatures, valid from one hour ago for one day).

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <utility>

#include "fake_openrouter.h"

namespace llmcache::fake {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct BioFree {
  void operator()(BIO* p) const { BIO_free(p); }
};
struct ExtFree {
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using BioPtr = std::unique_ptr<BIO, BioFree>;
using ExtPtr = std::unique_ptr<X509_EXTENSION, ExtFree>;

constexpr long kNotBeforeSeconds = -3600;     // one hour ago (clock skew)
constexpr long kNotAfterSeconds = 24 * 3600;  // one day

// "what: <OpenSSL error queue>"; clears the queue.
Status OpenSslError(const std::string& what) {
  std::string msg = what;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    msg += ": ";
    msg += buf;
  }
  return InternalError(msg);
}

Result<PkeyPtr> NewKey() {
  PkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return OpenSslError("EC P-256 key generation failed");
  return key;
}

Status AddExtension(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  ExtPtr ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  if (!ext) return OpenSslError(std::string("bad extension ") + value);
  if (X509_add_ext(cert, ext.get(), -1) != 1) {
    return OpenSslError(std::string("cannot add extension ") + value);
  }
  return Status();
}

struct CertSpec {
  std::string common_name;
  bool is_ca = false;
  std::string subject_alt_names;  // e.g. "DNS:localhost,IP:127.0.0.1"
};

// Makes a certificate for `key` signed by (issuer, issuer_key); a self-signed
// one when issuer is null.
Result<X509Ptr> MakeCert(const CertSpec& spec, EVP_PKEY* key, X509* issuer,
                         EVP_PKEY* issuer_key) {
  X509Ptr cert(X509_new());
  if (!cert) return OpenSslError("X509_new");
  X509* x = cert.get();
  if (X509_set_version(x, X509_VERSION_3) != 1) {
    return OpenSslError("X509_set_version");
  }
  // A random positive 63-bit serial: distinct certificates from one CA must
  // not share serials, or clients may reject them.
  uint64_t serial = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof(serial)) !=
      1) {
    return OpenSslError("RAND_bytes");
  }
  serial = (serial >> 1) | 1;
  if (ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) != 1) {
    return OpenSslError("serial");
  }
  if (X509_gmtime_adj(X509_getm_notBefore(x), kNotBeforeSeconds) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(x), kNotAfterSeconds) == nullptr) {
    return OpenSslError("validity");
  }
  if (X509_set_pubkey(x, key) != 1) return OpenSslError("X509_set_pubkey");

  X509_NAME* name = X509_get_subject_name(x);
  if (X509_NAME_add_entry_by_txt(
          name, "O", MBSTRING_ASC,
          reinterpret_cast<const unsigned char*>("llmcache tests"), -1, -1,
          0) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_ASC,
          reinterpret_cast<const unsigned char*>(spec.common_name.c_str()), -1,
          -1, 0) != 1) {
    return OpenSslError("subject name");
  }
  X509* signer_cert = issuer != nullptr ? issuer : x;
  EVP_PKEY* signer_key = issuer != nullptr ? issuer_key : key;
  if (X509_set_issuer_name(x, X509_get_subject_name(signer_cert)) != 1) {
    return OpenSslError("issuer name");
  }

  if (spec.is_ca) {
    LLMCACHE_RETURN_IF_ERROR(AddExtension(x, signer_cert, NID_basic_constraints,
                                          "critical,CA:TRUE"));
    LLMCACHE_RETURN_IF_ERROR(AddExtension(x, signer_cert, NID_key_usage,
                                          "critical,keyCertSign,cRLSign"));
  } else {
    LLMCACHE_RETURN_IF_ERROR(AddExtension(x, signer_cert, NID_basic_constraints,
                                          "critical,CA:FALSE"));
    LLMCACHE_RETURN_IF_ERROR(AddExtension(x, signer_cert, NID_key_usage,
                                          "critical,digitalSignature"));
    LLMCACHE_RETURN_IF_ERROR(
        AddExtension(x, signer_cert, NID_ext_key_usage, "serverAuth"));
  }
  LLMCACHE_RETURN_IF_ERROR(
      AddExtension(x, signer_cert, NID_subject_key_identifier, "hash"));
  if (issuer != nullptr) {
    LLMCACHE_RETURN_IF_ERROR(AddExtension(
        x, signer_cert, NID_authority_key_identifier, "keyid:always"));
  }
  if (!spec.subject_alt_names.empty()) {
    LLMCACHE_RETURN_IF_ERROR(AddExtension(x, signer_cert, NID_subject_alt_name,
                                          spec.subject_alt_names.c_str()));
  }
  if (X509_sign(x, signer_key, EVP_sha256()) <= 0) {
    return OpenSslError("X509_sign");
  }
  return cert;
}

Result<std::string> BioToString(BIO* bio) {
  const size_t n = BIO_ctrl_pending(bio);
  std::string out(n, '\0');
  if (n > 0 &&
      BIO_read(bio, out.data(), static_cast<int>(n)) != static_cast<int>(n)) {
    return OpenSslError("BIO_read");
  }
  return out;
}

Result<std::string> CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) {
    return OpenSslError("PEM_write_bio_X509");
  }
  return BioToString(bio.get());
}

Result<std::string> KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0,
                                       nullptr, nullptr) != 1) {
    return OpenSslError("PEM_write_bio_PrivateKey");
  }
  return BioToString(bio.get());
}

Result<TestCertificates> GenerateImpl() {
  TestCertificates out;

  LLMCACHE_ASSIGN_OR_RETURN(PkeyPtr ca_key, NewKey());
  LLMCACHE_ASSIGN_OR_RETURN(X509Ptr ca,
                            MakeCert({"llmcache test CA", /*is_ca=*/true, ""},
                                     ca_key.get(), nullptr, nullptr));
  LLMCACHE_ASSIGN_OR_RETURN(out.ca_cert_pem, CertPem(ca.get()));

  LLMCACHE_ASSIGN_OR_RETURN(PkeyPtr server_key, NewKey());
  LLMCACHE_ASSIGN_OR_RETURN(
      X509Ptr server,
      MakeCert({"localhost", false, "DNS:localhost,IP:127.0.0.1,IP:::1"},
               server_key.get(), ca.get(), ca_key.get()));
  LLMCACHE_ASSIGN_OR_RETURN(out.server_cert_pem, CertPem(server.get()));
  LLMCACHE_ASSIGN_OR_RETURN(out.server_key_pem, KeyPem(server_key.get()));

  LLMCACHE_ASSIGN_OR_RETURN(PkeyPtr wrong_key, NewKey());
  LLMCACHE_ASSIGN_OR_RETURN(
      X509Ptr wrong, MakeCert({"wrong.example", false, "DNS:wrong.example"},
                              wrong_key.get(), ca.get(), ca_key.get()));
  LLMCACHE_ASSIGN_OR_RETURN(out.wrong_host_cert_pem, CertPem(wrong.get()));
  LLMCACHE_ASSIGN_OR_RETURN(out.wrong_host_key_pem, KeyPem(wrong_key.get()));

  LLMCACHE_ASSIGN_OR_RETURN(PkeyPtr untrusted_key, NewKey());
  LLMCACHE_ASSIGN_OR_RETURN(
      X509Ptr untrusted,
      MakeCert({"localhost", false, "DNS:localhost,IP:127.0.0.1,IP:::1"},
               untrusted_key.get(), nullptr, nullptr));
  LLMCACHE_ASSIGN_OR_RETURN(out.untrusted_cert_pem, CertPem(untrusted.get()));
  LLMCACHE_ASSIGN_OR_RETURN(out.untrusted_key_pem, KeyPem(untrusted_key.get()));
  return out;
}

}  // namespace

Result<TestCertificates> TestCertificates::Generate() {
  try {
    Result<TestCertificates> r = GenerateImpl();
    ERR_clear_error();
    return r;
  } catch (const std::exception& e) {
    ERR_clear_error();
    return InternalError(std::string("certificate generation: ") + e.what());
  } catch (...) {
    ERR_clear_error();
    return InternalError("certificate generation: unknown exception");
  }
}

}  // namespace llmcache::fake
