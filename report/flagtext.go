package report

// flagText holds a one-line meaning of every flag the scanner sets, per
// report language, for the flag table of the HTML report. The flags
// themselves are public words (docs/verdicts.md) and never translated; only
// their meanings are. A test keeps both maps in step with the Flag*
// constants of scanner/result.
var flagText = map[string]map[string]string{
	"en": {
		"banner-refused":       "The server greeted with a 4xx/5xx banner instead of 220; the IP is not reachable.",
		"cert-expired":         "The certificate is past its validity period: not PKIX-valid.",
		"cert-name-mismatch":   "The certificate does not name the MX host: not PKIX-valid for it.",
		"cert-not-yet-valid":   "The certificate's validity period has not started yet: not PKIX-valid.",
		"cert-self-signed":     "The certificate is self-signed: not PKIX-valid.",
		"cert-untrusted":       "The certificate chain does not lead to a trusted root: not PKIX-valid.",
		"connect-failed":       "The TCP connection failed (refused, unreachable, timed out) or closed before any banner; not reachable.",
		"dane-mismatch":        "A certificate does not match its host's secure TLSA records; DANE senders skip that IP (broken when no IP passes).",
		"dns-servfail":         "The domain's MX lookup failed with SERVFAIL (dns-error).",
		"dns-timeout":          "The domain's MX lookup timed out (dns-error).",
		"smtp-protocol-error":  "The server's reply was not SMTP (garbled, an unexpected code) or the connection was lost mid-dialogue (after EHLO, e.g. at STARTTLS).",
		"ehlo-lost":            "After the 220 banner the connection was lost, timed out or garbled before the EHLO/HELO reply; not reachable.",
		"ehlo-refused":         "After the 220 banner the server answered 4xx/5xx to EHLO and HELO; not reachable (a sender defers).",
		"implicit-mx":          "No MX records: the domain's own A/AAAA addresses are its mail server.",
		"ipv6-not-probed":      "The MX host has only IPv6 addresses and IPv6 probing is off (--ipv6); counted as not reachable.",
		"mx-capped":            "More MX hosts or addresses than the scan's limits; the rest were not probed.",
		"mx-cname":             "The MX lookup or an MX host name goes through a CNAME alias.",
		"mx-dangling":          "An MX host name has no A/AAAA records (or does not exist).",
		"mx-ip-literal":        "An MX target is an IP address literal, not a host name: not usable.",
		"mx-private-address":   "An MX IP is loopback, private or reserved and was not probed.",
		"no-tlsrpt":            "No valid TLSRPT record (_smtp._tls): the domain receives no TLS failure reports.",
		"null-mx":              "The domain publishes a null MX (RFC 7505): it accepts no mail.",
		"nxdomain":             "The domain does not exist (NXDOMAIN).",
		"retried-later":        "A 4xx at the banner or EHLO was tried again later in the run with back-off; the verdict uses the last attempt.",
		"sni-per-name":         "The IP chooses its certificate by SNI (shared hosting); the host was judged on a probe with its own name.",
		"starttls-not-offered": "The server did not list STARTTLS in its EHLO reply: mail to this IP travels in plaintext.",
		"starttls-refused":     "The server listed STARTTLS but did not answer 220 to it (e.g. 454).",
		"sts-cached":           "A cached MTA-STS policy within its max_age applied because the live one was absent or unavailable.",
		"sts-cert-invalid":     "Under an MTA-STS enforce policy, an IP's certificate is not valid; senders skip it (broken when no MX host passes).",
		"sts-fetch-failed":     "The MTA-STS policy could not be fetched over HTTPS; treated as absent.",
		"sts-invalid":          "The MTA-STS policy was fetched but does not parse; treated as absent.",
		"sts-lookup-failed":    "The _mta-sts TXT lookup failed (SERVFAIL, timeout): not an absent record; looked up again next run.",
		"sts-mx-mismatch":      "Under an MTA-STS enforce policy, an MX host matches no mx pattern; senders skip it (broken when no MX host passes).",
		"sts-none":             "The MTA-STS policy is in mode none: no protection.",
		"sts-record-invalid":   "The _mta-sts TXT record is invalid (malformed, or more than one); treated as absent.",
		"sts-testing":          "The MTA-STS policy is in mode testing: reported but not enforced.",
		"timeout":              "A deadline passed after connecting: before the banner (not reachable) or during STARTTLS (not completed).",
		"tls-1.0":              "The handshake negotiated the old TLS 1.0.",
		"tls-1.1":              "The handshake negotiated the old TLS 1.1.",
		"tls-fallback-stack":   "Only the second, OpenSSL-compatible TLS implementation completed the handshake: STARTTLS completed.",
		"tls-handshake-failed": "The TLS handshake after STARTTLS failed, as it would for an OpenSSL-based sender.",
		"tls-not-judged":       "Neither TLS implementation could tell whether an OpenSSL-based sender completes the handshake; not judged, never plaintext.",
		"tlsa-insecure":        "TLSA records came without DNSSEC validation (no AD bit) and are ignored.",
		"tlsa-servfail":        "The TLSA lookup of a DNSSEC-secure MX host failed (dns-error).",
		"tlsa-unusable":        "The secure TLSA records have no usable record (usage 0/1, unknown types): no DANE.",
		"tlsrpt-lookup-failed": "The _smtp._tls TXT lookup failed (SERVFAIL, timeout); not the same as no-tlsrpt.",
	},
	"ja": {
		"banner-refused":       "サーバーが 220 ではなく 4xx/5xx のバナーを返しました。この IP には到達できません。",
		"cert-expired":         "証明書の有効期限が切れています（PKIX で有効ではありません）。",
		"cert-name-mismatch":   "証明書に MX ホスト名が含まれていません（このホストに対して PKIX で有効ではありません）。",
		"cert-not-yet-valid":   "証明書の有効期間がまだ始まっていません（PKIX で有効ではありません）。",
		"cert-self-signed":     "証明書が自己署名です（PKIX で有効ではありません）。",
		"cert-untrusted":       "証明書チェーンが信頼されたルートにつながりません（PKIX で有効ではありません）。",
		"connect-failed":       "TCP 接続に失敗した（拒否・到達不能・タイムアウト）か、バナーの前に切断されました。到達できません。",
		"dane-mismatch":        "証明書がホストの安全な TLSA レコードと一致しません。DANE 対応の送信側はその IP を避けます（全 IP が不一致なら broken）。",
		"dns-servfail":         "ドメインの MX 検索が SERVFAIL で失敗しました（dns-error）。",
		"dns-timeout":          "ドメインの MX 検索がタイムアウトしました（dns-error）。",
		"smtp-protocol-error":  "サーバーの応答が SMTP として正しくない（壊れている、想定外のコード）か、対話の途中（EHLO の後、STARTTLS など）で接続が切れました。",
		"ehlo-lost":            "220 バナーの後、EHLO/HELO の応答の前に接続が切れたか、タイムアウトしたか、応答が壊れていました。到達できません。",
		"ehlo-refused":         "220 バナーの後、EHLO と HELO に 4xx/5xx が返りました。到達できません（送信側は配送を延期します）。",
		"implicit-mx":          "MX レコードがなく、ドメイン自身の A/AAAA アドレスがメールサーバーです。",
		"ipv6-not-probed":      "MX ホストに IPv6 アドレスしかなく、IPv6 の調査が無効です（--ipv6）。到達できないものとして数えます。",
		"mx-capped":            "MX ホストまたはアドレスが調査の上限を超えたため、残りは調査していません。",
		"mx-cname":             "MX の検索または MX ホスト名が CNAME の別名を経由しています。",
		"mx-dangling":          "MX ホスト名に A/AAAA レコードがありません（または存在しません）。",
		"mx-ip-literal":        "MX の宛先がホスト名ではなく IP アドレスそのものです。使用できません。",
		"mx-private-address":   "MX の IP がループバック・プライベート・予約済みのアドレスのため、調査していません。",
		"no-tlsrpt":            "有効な TLSRPT レコード（_smtp._tls）がなく、TLS 失敗の報告を受け取りません。",
		"null-mx":              "ドメインが null MX（RFC 7505）を公開しており、メールを受け付けません。",
		"nxdomain":             "ドメインが存在しません（NXDOMAIN）。",
		"retried-later":        "バナーまたは EHLO での 4xx を、同じ調査の中で間隔を空けて再試行しました。判定は最後の試行によります。",
		"sni-per-name":         "この IP は SNI で証明書を選びます（共用ホスティング）。ホストは自分の名前での調査結果で判定しました。",
		"starttls-not-offered": "EHLO の応答に STARTTLS がありません。この IP へのメールは暗号化されずに届きます。",
		"starttls-refused":     "STARTTLS を提示しながら、STARTTLS コマンドに 220 を返しませんでした（例：454）。",
		"sts-cached":           "現在のポリシーが存在しないか取得できなかったため、max_age 内のキャッシュ済み MTA-STS ポリシーを適用しました。",
		"sts-cert-invalid":     "MTA-STS の enforce ポリシーの下で、証明書が有効でない IP があります。送信側はそこを避けます（合格する MX ホストがなければ broken）。",
		"sts-fetch-failed":     "MTA-STS ポリシーを HTTPS で取得できませんでした。ポリシーなしとして扱います。",
		"sts-invalid":          "MTA-STS ポリシーを取得しましたが、書式が正しくありません。ポリシーなしとして扱います。",
		"sts-lookup-failed":    "_mta-sts の TXT 検索に失敗しました（SERVFAIL・タイムアウト）。レコードなしではなく、次回の調査で再検索します。",
		"sts-mx-mismatch":      "MTA-STS の enforce ポリシーの mx パターンに合わない MX ホストがあります。送信側はそこを避けます（合格する MX ホストがなければ broken）。",
		"sts-none":             "MTA-STS ポリシーが mode none で、保護はありません。",
		"sts-record-invalid":   "_mta-sts の TXT レコードが不正です（書式誤り、または複数）。ポリシーなしとして扱います。",
		"sts-testing":          "MTA-STS ポリシーが mode testing で、報告のみで強制されません。",
		"timeout":              "接続後に時間切れになりました。バナーの前なら到達できず、STARTTLS 中なら暗号化が完了していません。",
		"tls-1.0":              "古い TLS 1.0 で接続しました。",
		"tls-1.1":              "古い TLS 1.1 で接続しました。",
		"tls-fallback-stack":   "OpenSSL 互換の第二の TLS 実装でのみハンドシェイクが完了しました（STARTTLS は完了）。",
		"tls-handshake-failed": "STARTTLS 後の TLS ハンドシェイクが失敗しました。OpenSSL を使う送信側でも失敗します。",
		"tls-not-judged":       "どちらの TLS 実装でも、OpenSSL を使う送信側がハンドシェイクを完了できるか判断できませんでした。未判定であり、平文扱いではありません。",
		"tlsa-insecure":        "TLSA レコードが DNSSEC で検証されておらず（AD ビットなし）、無視しました。",
		"tlsa-servfail":        "DNSSEC で保護された MX ホストの TLSA 検索に失敗しました（dns-error）。",
		"tlsa-unusable":        "安全な TLSA レコードに使用できるものがありません（用途 0/1、未知の種類）。DANE になりません。",
		"tlsrpt-lookup-failed": "_smtp._tls の TXT 検索に失敗しました（SERVFAIL・タイムアウト）。no-tlsrpt とは異なります。",
	},
}

// otherFlagText explains the report's "other" row, which collects the flags
// beyond the distinct flags it counts one by one.
var otherFlagText = map[string]string{
	"en": "All further flags, counted together.",
	"ja": "その他のフラグの合計です。",
}

// FlagMeaning returns the one-line meaning of a flag in lang ("ja" or "en";
// anything else is English), or "" for a flag this version does not know.
func FlagMeaning(lang, flag string) string {
	lang = NormalizeLang(lang)
	if s, ok := flagText[lang][flag]; ok {
		return s
	}
	if flag == "other" {
		return otherFlagText[lang]
	}
	return flagText["en"][flag]
}
