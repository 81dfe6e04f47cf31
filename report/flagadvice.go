package report

import (
	"cmp"
	"slices"

	"github.com/tlsready/tlsready/scanner/result"
)

// flagAdvice is, per flag that can explain a plaintext, partial or broken
// verdict, the cause in a few words (to complete the sentence of what is
// wrong, see wrongSentence) and the fix, in every report language: the one
// place the "who to call" list takes its advice from. A test keeps it in
// step with the Flag* constants (every critical flag has advice) and with
// the languages.
//
// Causes: English, a lower-case clause without a final stop ("STARTTLS is
// not offered"); Japanese, a clause in plain form that can take ため.
// Fixes: one sentence each, for the mail server's operator.
var flagAdvice = map[string]map[string]adviceText{
	result.FlagNoSTARTTLS: {
		"en": {"STARTTLS is not offered", "Enable STARTTLS on the mail server: install a certificate for its MX host name (for example from Let's Encrypt) and turn TLS on for incoming mail (Postfix: smtpd_tls_security_level = may)."},
		"ja": {"STARTTLS が提供されていない", "メールサーバーで STARTTLS を有効にする（MX ホスト名の証明書を Let's Encrypt などで用意し、受信の TLS を有効にする。Postfix なら smtpd_tls_security_level = may）。"},
	},
	result.FlagSTARTTLSRefused: {
		"en": {"the STARTTLS command is refused", "Make the server accept STARTTLS: a 454 reply usually means its certificate or key is missing or unreadable."},
		"ja": {"STARTTLS コマンドが拒否される", "STARTTLS を受け付けるようにする（454 の応答は多くの場合、証明書か秘密鍵がないか読めないことが原因）。"},
	},
	result.FlagHandshakeFailed: {
		"en": {"the TLS handshake fails", "Update the server's TLS settings so that current senders complete the handshake: TLS 1.2 or 1.3, current cipher suites, a complete certificate chain."},
		"ja": {"TLS のハンドシェイクが失敗する", "現在の送信側がハンドシェイクを完了できるよう TLS 設定を更新する（TLS 1.2 または 1.3、現行の暗号スイート、完全な証明書チェーン）。"},
	},
	result.FlagTimeout: {
		"en": {"the server stops answering during the session", "Find out why the server stalls after connecting or at STARTTLS (overload, or a firewall or filter that blocks STARTTLS) and remove the cause."},
		"ja": {"サーバーが通信の途中で応答しなくなる", "接続後や STARTTLS でサーバーが止まる原因（過負荷、STARTTLS を妨げるファイアウォールやフィルター）を調べて取り除く。"},
	},
	result.FlagProtocolError: {
		"en": {"the server's replies are garbled or the connection drops", "Check the mail server, and any filter or load balancer in front of it, for the garbled replies or the dropped connections at STARTTLS."},
		"ja": {"サーバーの応答が壊れている、または接続が切れる", "STARTTLS で応答が壊れたり接続が切れたりする原因を、メールサーバーとその前段のフィルターやロードバランサーについて点検する。"},
	},
	result.FlagDANEMismatch: {
		"en": {"the certificates do not match the domain's TLSA records", "Publish TLSA records that match the certificates the servers present (and update them before each certificate or key change), or remove the stale TLSA records."},
		"ja": {"証明書がドメインの TLSA レコードと一致しない", "サーバーが提示する証明書に一致する TLSA レコードを公開する（証明書や鍵を替える前に更新する）か、古い TLSA レコードを削除する。"},
	},
	result.FlagSTSMXMismatch: {
		"en": {"the MTA-STS policy does not list the MX hosts", "List every MX host in the mx: lines of the MTA-STS policy (or correct the MX records), then publish the policy with a new id in the _mta-sts record."},
		"ja": {"MTA-STS ポリシーに MX ホストが記載されていない", "MTA-STS ポリシーの mx: 行にすべての MX ホストを記載し（または MX レコードを直し）、_mta-sts レコードの id を更新して公開する。"},
	},
	result.FlagSTSCertInvalid: {
		"en": {"a server lacks the valid certificate for its MX host name that the MTA-STS policy requires", "Install a certificate for each MX host name from a public certificate authority on every server; until then, set the MTA-STS policy to mode: testing."},
		"ja": {"MTA-STS ポリシーが求める、MX ホスト名に有効な証明書がサーバーにない", "すべてのサーバーに、公的な認証局が発行した MX ホスト名の証明書を導入する。それまでは MTA-STS ポリシーを mode: testing にする。"},
	},
	result.FlagCertExpired: {
		"en": {"a certificate has expired", "Renew the certificate and automate its renewal."},
		"ja": {"証明書の有効期限が切れている", "証明書を更新し、更新を自動化する。"},
	},
	result.FlagCertNotYetValid: {
		"en": {"a certificate is not valid yet", "Check the server's clock and install a certificate that is valid now."},
		"ja": {"証明書の有効期間がまだ始まっていない", "サーバーの時刻を確認し、現在有効な証明書を導入する。"},
	},
	result.FlagCertSelfSigned: {
		"en": {"a certificate is self-signed", "Replace the self-signed certificate with one from a public certificate authority for the MX host name."},
		"ja": {"証明書が自己署名である", "自己署名の証明書を、公的な認証局が発行した MX ホスト名の証明書に替える。"},
	},
	result.FlagCertNameMismatch: {
		"en": {"a certificate does not name the MX host", "Install a certificate that names the MX host name exactly as the MX record gives it."},
		"ja": {"証明書に MX ホスト名が含まれていない", "MX レコードにあるとおりの MX ホスト名を含む証明書を導入する。"},
	},
	result.FlagCertUntrusted: {
		"en": {"a certificate chain does not lead to a trusted root", "Configure the server to send the full certificate chain, with a certificate from a public certificate authority."},
		"ja": {"証明書チェーンが信頼されたルートにつながらない", "公的な認証局の証明書を使い、中間証明書を含む完全なチェーンを送るようサーバーを設定する。"},
	},
	result.FlagConnectFailed: {
		"en": {"a mail server cannot be reached on port 25", "Make every MX host reachable on port 25 from the internet, or remove the MX records of hosts that no longer receive mail."},
		"ja": {"メールサーバーに 25 番ポートで接続できない", "すべての MX ホストにインターネットから 25 番ポートで接続できるようにするか、もう受信しないホストの MX レコードを削除する。"},
	},
	result.FlagMXDangling: {
		"en": {"an MX host name has no address", "Give the MX host name an A/AAAA record or remove that MX record."},
		"ja": {"MX ホスト名にアドレスがない", "MX ホスト名に A/AAAA レコードを設定するか、その MX レコードを削除する。"},
	},
	result.FlagBannerRefused: {
		"en": {"a mail server refuses the session", "Make the server greet senders with 220 (a 4xx/5xx banner turns every sender away)."},
		"ja": {"メールサーバーがセッションを拒否する", "送信側に 220 で応答するようにする（4xx/5xx のバナーはすべての送信側を拒否する）。"},
	},
	result.FlagEHLORefused: {
		"en": {"a mail server refuses EHLO", "Make the server accept EHLO from ordinary senders."},
		"ja": {"メールサーバーが EHLO を拒否する", "一般の送信側からの EHLO を受け付けるようにする。"},
	},
	result.FlagEHLOLost: {
		"en": {"a mail server drops the session before EHLO is answered", "Find out why the server or a filter in front of it drops sessions after the banner."},
		"ja": {"メールサーバーが EHLO に応答する前に切断する", "バナーの後にセッションを切るサーバーまたは前段のフィルターの原因を調べる。"},
	},
}

// adviceText is a flag's cause and fix in one language.
type adviceText struct {
	Cause string
	Fix   string
}

// CallVerdicts are the verdicts of the "who to call" list: the domains
// whose citizens' mail travels in plaintext today (plaintext, partial) or
// does not arrive from senders that honour the domain's policy (broken).
var CallVerdicts = []result.Verdict{result.Plaintext, result.Partial, result.Broken}

// genericCause completes the sentence of what is wrong when no flag of the
// domain has advice.
var genericCause = map[string]map[result.Verdict]string{
	"en": {
		result.Plaintext: "no mail server completes STARTTLS",
		result.Partial:   "some of its mail servers do not complete STARTTLS",
		result.Broken:    "its servers do not meet its own DANE or MTA-STS policy",
	},
	"ja": {
		result.Plaintext: "どのメールサーバーも STARTTLS を完了しない",
		result.Partial:   "一部のメールサーバーが STARTTLS を完了しない",
		result.Broken:    "サーバーがドメイン自身の DANE または MTA-STS のポリシーを満たしていない",
	},
}

// maxFixes is the number of fixes listed per domain.
const maxFixes = 3

// adviceFlags returns the flags of a domain that have advice, most severe
// first (in the order of the domain's flags within a severity).
func adviceFlags(flags []string) []string {
	var out []string
	for _, f := range flags {
		if _, ok := flagAdvice[f]; ok && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.SortStableFunc(out, func(a, b string) int { return cmp.Compare(FlagSeverity(b), FlagSeverity(a)) })
	return out
}

// Advice is what is wrong with a domain, in one sentence, and what fixes it.
type Advice struct {
	Wrong string   // one sentence
	Fixes []string // most important first; at most maxFixes
}

// DomainAdvice derives the advice for a plaintext, partial or broken domain
// from its flags, in lang ("ja" or "en"; anything else is English). For a
// broken domain the policy flags come first: they are why it is broken.
func DomainAdvice(lang string, v result.Verdict, flags []string) Advice {
	lang = NormalizeLang(lang)
	fs := adviceFlags(flags)
	if v == result.Broken {
		slices.SortStableFunc(fs, func(a, b string) int { return cmp.Compare(policyFlag(b), policyFlag(a)) })
	}
	cause := genericCause[lang][v]
	if len(fs) > 0 {
		cause = flagAdvice[fs[0]][lang].Cause
	}
	a := Advice{Wrong: fill(Translator(lang)("wrong_"+string(v)), cause)}
	for _, f := range fs[:min(len(fs), maxFixes)] {
		a.Fixes = append(a.Fixes, flagAdvice[f][lang].Fix)
	}
	return a
}

// policyFlag is 1 for the flags that make a domain broken, else 0.
func policyFlag(f string) int {
	switch f {
	case result.FlagDANEMismatch, result.FlagSTSMXMismatch, result.FlagSTSCertInvalid:
		return 1
	}
	return 0
}
