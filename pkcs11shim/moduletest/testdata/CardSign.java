// CardSign signs with the card's keys through Java's SunPKCS11 provider
// and verifies each signature with the JDK's own providers: SHA256withECDSA
// with an EC key, SHA256withRSA and RSASSA-PSS with an RSA key; it digests
// through the card too. Usage (source launch):
//   java CardSign.java MODULE PIN
// It prints one line per check and exits 1 if any failed.

import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.PrivateKey;
import java.security.Provider;
import java.security.PublicKey;
import java.security.Security;
import java.security.Signature;
import java.security.cert.Certificate;
import java.security.spec.MGF1ParameterSpec;
import java.security.spec.PSSParameterSpec;
import java.util.Arrays;
import java.util.Collections;

public class CardSign {
    static int failures;

    static void check(String what, boolean ok) {
        System.out.println((ok ? "ok   " : "FAIL ") + what);
        if (!ok) failures++;
    }

    static void signVerify(Provider card, String alg, PSSParameterSpec pss, PrivateKey key, PublicKey pub, String verifier) throws Exception {
        byte[] data = ("a message signed by the card with " + alg).getBytes("UTF-8");
        Signature s = Signature.getInstance(alg, card);
        if (pss != null) s.setParameter(pss);
        s.initSign(key);
        s.update(data);
        byte[] sig = s.sign();
        Signature v = Signature.getInstance(alg, verifier);
        if (pss != null) v.setParameter(pss);
        v.initVerify(pub);
        v.update(data);
        check(alg + " by the card verifies with " + verifier, v.verify(sig));
        v.initVerify(pub);
        v.update("another message".getBytes("UTF-8"));
        check(alg + " does not verify another message", !v.verify(sig));
    }

    public static void main(String[] args) throws Exception {
        String config = "--name=tpmcard\nlibrary=" + args[0] + "\nslotListIndex=0\n";
        Provider card = Security.getProvider("SunPKCS11").configure(config);
        Security.addProvider(card);

        MessageDigest md = MessageDigest.getInstance("SHA-256", card);
        byte[] d = md.digest("abc".getBytes("UTF-8"));
        check("SHA-256 through the card", Arrays.equals(d, MessageDigest.getInstance("SHA-256", "SUN").digest("abc".getBytes("UTF-8"))));

        KeyStore ks = KeyStore.getInstance("PKCS11", card);
        ks.load(null, args[1].toCharArray());
        int ec = 0, rsa = 0;
        for (String alias : Collections.list(ks.aliases())) {
            if (!ks.isKeyEntry(alias)) continue;
            PrivateKey key = (PrivateKey) ks.getKey(alias, null);
            Certificate cert = ks.getCertificate(alias);
            System.out.println("key " + alias + ": " + key.getAlgorithm());
            if (key.getAlgorithm().equals("EC")) {
                signVerify(card, "SHA256withECDSA", null, key, cert.getPublicKey(), "SunEC");
                ec++;
            } else if (key.getAlgorithm().equals("RSA")) {
                signVerify(card, "SHA256withRSA", null, key, cert.getPublicKey(), "SunRsaSign");
                PSSParameterSpec pss = new PSSParameterSpec("SHA-256", "MGF1", MGF1ParameterSpec.SHA256, 32, 1);
                signVerify(card, "RSASSA-PSS", pss, key, cert.getPublicKey(), "SunRsaSign");
                rsa++;
            }
        }
        check("an EC and an RSA key in the key store", ec >= 1 && rsa >= 1);
        System.out.println(failures + " failures");
        System.exit(failures == 0 ? 0 : 1);
    }
}
