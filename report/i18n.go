package report

import (
	"strconv"
	"strings"
)

// Languages are the report languages; the first is the fallback.
var Languages = []string{"en", "ja"}

// NormalizeLang returns "ja" for any Japanese tag ("ja", "ja_JP.UTF-8",
// "ja-JP") and "en" for everything else.
func NormalizeLang(lang string) string {
	if strings.HasPrefix(strings.ToLower(lang), "ja") {
		return "ja"
	}
	return "en"
}

// DefaultLang picks the report language from the locale environment:
// the first non-empty of LC_ALL, LC_MESSAGES and LANG (POSIX precedence);
// Japanese when it starts with "ja", else English. getenv is os.Getenv in
// production.
func DefaultLang(getenv func(string) string) string {
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := getenv(k); v != "" {
			return NormalizeLang(v)
		}
	}
	return "en"
}

// Translator returns the message lookup of a language. A key missing from
// the language falls back to English, then to the key itself (a test keeps
// both catalogues complete).
func Translator(lang string) func(key string) string {
	cat := catalogue[NormalizeLang(lang)]
	return func(key string) string {
		if s, ok := cat[key]; ok {
			return s
		}
		if s, ok := catalogue["en"][key]; ok {
			return s
		}
		return key
	}
}

// punct is the punctuation the report puts around and between translated
// text and numbers.
type punct struct {
	Colon, Open, Close, Comma, Stop string
}

// punctuation per language: Japanese text takes the full-width colon and
// parentheses and the ideographic comma and full stop; English puts a space
// before an opening parenthesis.
var punctuation = map[string]punct{
	"en": {Colon: ": ", Open: " (", Close: ")", Comma: ", ", Stop: "."},
	"ja": {Colon: "：", Open: "（", Close: "）", Comma: "、", Stop: "。"},
}

// punctFor returns the punctuation of a report language.
func punctFor(lang string) punct { return punctuation[NormalizeLang(lang)] }

// units are the counter words written after a number in Japanese ("31 人",
// "12 件"), where a card's label names what is counted; English labels say
// it themselves, so English has none.
var units = map[string]map[string]string{
	"ja": {"people": "人", "domains": "件"},
}

// unitFor returns the counter word of a language for "people" or "domains"
// ("" when the language has none).
func unitFor(lang, what string) string { return units[NormalizeLang(lang)][what] }

// fill replaces the placeholders {1}, {2}, ... of a catalogue message with
// args, so that each language puts the numbers where its grammar wants them.
func fill(msg string, args ...string) string {
	for i, a := range args {
		msg = strings.ReplaceAll(msg, "{"+strconv.Itoa(i+1)+"}", a)
	}
	return msg
}

// catalogue holds every user-visible string of the HTML report and the
// terminal table. Verdict words and flags are never translated (public
// contract); their explanations are.
var catalogue = map[string]map[string]string{
	"en": {
		"title":                   "Mail transport security of citizens' e-mail addresses",
		"run":                     "Run",
		"scan_started":            "scan started",
		"scan_finished":           "finished",
		"generated":               "report generated",
		"offline_note":            "This report is a single self-contained file: it loads nothing from the network and can be read offline.",
		"nav_headline":            "Summary",
		"nav_whatif":              "What if",
		"nav_charts":              "Charts",
		"nav_domains":             "Domains",
		"nav_changes":             "Changes",
		"nav_reasons":             "Reasons",
		"nav_method":              "Methodology",
		"h_headline":              "Summary",
		"kpi_plaintext_share":     "of citizens would receive mail in plaintext today",
		"kpi_plaintext_citizens":  "citizens at plaintext domains",
		"kpi_partial_citizens":    "more citizens at partial domains (plaintext depending on the MX host reached)",
		"kpi_citizens":            "citizens (registered addresses)",
		"kpi_domains":             "recipient domains",
		"col_verdict":             "Verdict",
		"col_meaning":             "Meaning",
		"col_citizens":            "Citizens",
		"col_domains":             "Domains",
		"col_domain":              "Domain",
		"col_flags":               "Flags",
		"col_flag":                "Flag",
		"col_severity":            "Severity",
		"sev_critical":            "critical",
		"sevdef_critical":         "mail to a server travels in plaintext, or the domain's own policy turns policy-honouring senders away",
		"sev_warning":             "warning",
		"sevdef_warning":          "a certificate cannot be verified (encrypted at best), or a server could not be reached or looked up",
		"sev_notice":              "notice",
		"sevdef_notice":           "protection that could be stronger or is not in force, or a domain that accepts no mail",
		"sev_info":                "info",
		"sevdef_info":             "explains the verdict; changes nothing about how mail travels",
		"col_details":             "Details",
		"col_outcome":             "Outcome for citizens",
		"col_status":              "Probe",
		"col_cert":                "Certificate",
		"col_problems":            "Checks",
		"col_banner":              "Banner",
		"total":                   "Total",
		"h_whatif":                "What if the portal changed its sending policy?",
		"whatif_intro":            "Citizens counted by the verdict of their address's domain, under four sending policies of the portal's mail gateway.",
		"wi_plaintext":            "citizens get plaintext mail with opportunistic TLS (today's default)",
		"wi_plaintext_maybe":      "and {1} more at partial domains, depending on the MX host reached",
		"wi_bounce_tls":           "citizens' mail would bounce with TLS required (\"enforce TLS\")",
		"wi_bounce_tls_maybe":     "and {1} more at partial domains would bounce or be delayed, depending on the MX host reached",
		"wi_bounce_verified":      "more would bounce with verified TLS required (invalid certificates)",
		"wi_safe_active":          "citizens are safe against an active attacker when DANE/MTA-STS are honoured",
		"wi_broken_fail":          "but {1} citizens' mail would not be delivered at all: their domain's own policy is broken",
		"sc_opportunistic":        "Opportunistic TLS (today)",
		"sc_tls-required":         "TLS required",
		"sc_verified-required":    "Verified TLS required",
		"sc_policy-honoured":      "DANE/MTA-STS honoured",
		"scdef_opportunistic":     "The gateway uses STARTTLS when the receiving server offers it and accepts any certificate; otherwise it delivers in plaintext. DANE and MTA-STS are ignored.",
		"scdef_tls-required":      "The gateway delivers only over STARTTLS (any certificate), like a delivery service's \"enforce TLS\" option. Mail to plaintext domains bounces; partial domains bounce or are delayed when the MX host reached does not complete STARTTLS.",
		"scdef_verified-required": "The gateway delivers only over STARTTLS with a certificate that is valid for the MX host name. In addition to the plaintext domains, mail to encrypted domains (invalid certificates) bounces. Without DNSSEC or MTA-STS an active attacker can still redirect the MX lookup.",
		"scdef_policy-honoured":   "Opportunistic TLS, but the gateway honours DANE (RFC 7672) and MTA-STS (RFC 8461). Citizens at dane and mta-sts domains are safe against an active attacker; mail to domains with a broken policy is not delivered.",
		"oc_protected":            "Protected against active attackers",
		"oc_encrypted":            "Encrypted (passive eavesdroppers only)",
		"oc_plaintext":            "Plaintext",
		"oc_partial":              "Depends on the MX host reached (partial)",
		"oc_bounced":              "Bounced by the policy",
		"oc_broken_policy":        "Domain's policy broken (TLS not judged)",
		"oc_no_mail":              "Domain accepts no mail (no-mail)",
		"oc_unknown":              "Unknown (unreachable, dns-error)",
		"h_charts":                "Charts",
		"chart_verdict_citizens":  "Citizens per verdict",
		"chart_verdict_domains":   "Domains per verdict",
		"chart_at_risk":           "Domains with the most citizens at risk of plaintext mail (plaintext, partial)",
		"chart_trend":             "Trend: citizens per verdict in each run (each panel has its own scale; the number on the right is this run's)",
		"h_domains":               "Domains by number of citizens",
		"domains_intro":           "The domains with the most citizens, with their MX hosts, TLS versions, certificates and policies. The full list of every domain is in the CSV export (tlsready report --format csv).",
		"filter_verdict":          "Verdict",
		"filter_flag":             "Flag",
		"filter_text":             "Domain contains",
		"all":                     "all",
		"shown":                   "shown",
		"show":                    "Show",
		"show_mx":                 "Show ({1} MX)",
		"no_result":               "no stored result",
		"dnssec_secure":           "DNSSEC-secure",
		"scanned":                 "scanned",
		"pref":                    "preference",
		"skipped":                 "not probed",
		"issuer":                  "issuer",
		"not_after":               "valid until",
		"more_hosts":              "More MX hosts are in the CSV/JSON export.",
		"present":                 "published",
		"absent":                  "not published",
		"h_tail":                  "The remaining domains",
		"tail_intro":              "Beyond the table above",
		"tail_none":               "The table above lists every domain of the run.",
		"domains_word":            "domains",
		"citizens_word":           "citizens",
		"h_changes":               "Changes since the previous run",
		"changes_intro":           "Compared with run #{1} ({2}).",
		"changes_none":            "There is no earlier finished run to compare with.",
		"ch_better":               "Better verdict",
		"ch_worse":                "Worse verdict",
		"ch_unchanged":            "Unchanged",
		"ch_not_comparable":       "Not comparable (to or from unreachable, dns-error or unknown)",
		"ch_new":                  "New domains",
		"ch_gone":                 "Domains no longer in the register (citizens in the previous run)",
		"ch_plaintext_delta":      "Change in citizens at plaintext domains",
		"ch_top_worse":            "Got worse (most citizens first)",
		"ch_top_better":           "Got better (most citizens first)",
		"ch_from_to":              "Before → now",
		"ch_note":                 "Better and worse follow the verdict order of the methodology. Temporary verdicts (unreachable, dns-error) say nothing about TLS and are never counted as a change.",
		"h_reasons":               "Reasons (flags)",
		"reasons_intro":           "Flags are short words that say why a domain got its verdict, counted over all domains of the run. The most severe come first, then those affecting the most citizens; informational flags, which change nothing about how mail travels, come last.",
		"none":                    "None.",
		"h_method":                "Methodology",
		"m_what":                  "What was measured",
		"m_what_text":             "For every domain of the register: its MX records (or the domain itself when it has none), their addresses and, with DNSSEC, their TLSA records; for every MX address: an SMTP connection to port 25 that reads the banner, sends EHLO, asks for STARTTLS and completes a TLS handshake, then checks the certificate (chain to a trusted root, validity dates, MX host name, and TLSA records for DANE). No mail is sent. Each address is probed once per run, however many domains share it. The domain's MTA-STS policy and TLS-RPT record are read as well. Citizens are counted by the domain of their registered address.",
		"m_where":                 "From where and when",
		"m_vantage":               "Vantage point (HELO name)",
		"m_resolver":              "DNS resolver",
		"m_trust_ad_yes":          "its DNSSEC validation (AD bit) is trusted",
		"m_trust_ad_no":           "its DNSSEC validation is not trusted: no DANE verdicts",
		"m_period":                "Scan period",
		"m_version":               "Scanner version",
		"m_counts":                "Volume",
		"m_recipients":            "recipients",
		"m_bad_lines":             "unusable lines",
		"m_domains":               "domains",
		"m_scanned":               "scanned now",
		"m_reused":                "reused from a recent scan",
		"m_mxips":                 "MX addresses",
		"m_connections":           "SMTP connections",
		"m_verdicts":              "Verdicts (best to worst)",
		"m_verdicts_doc":          "The verdicts, the rules that decide the edge cases and every flag are defined in docs/verdicts.md of the tlsready repository.",
		"m_whatif":                "How the what-if numbers are computed",
		"m_whatif_text":           "Every citizen is counted once, by the verdict of the domain of their address in this run. Opportunistic TLS: plaintext domains receive plaintext, partial domains may. TLS required: plaintext domains bounce, partial domains may bounce or be delayed, dane, mta-sts, verified and encrypted domains receive encrypted mail. Verified TLS required: encrypted domains bounce too. DANE/MTA-STS honoured: only dane and mta-sts domains are safe against an active attacker (who can otherwise strip STARTTLS or redirect the MX lookup); broken domains are not delivered. Broken domains are not judged under the first three policies, no-mail domains accept no mail under any policy, and unreachable and dns-error domains are unknown.",
		"m_limits":                "What the scanner cannot see",
		"m_limit_relays":          "Only the first hop is measured: the public MX servers of a domain. How a provider relays mail internally, or forwards it to another address, is invisible.",
		"m_limit_vantage":         "The scan ran from one place. Servers may answer other senders differently (allow lists, geography, load balancers behind one address).",
		"m_limit_partial":         "For partial domains, which MX host a real message reaches depends on the sender's retry behaviour and on availability at that moment.",
		"m_limit_temporary":       "Unreachable and dns-error are temporary: the TLS state is unknown and is measured again in the next run.",
		"m_limit_tls":             "The scanner speaks Go's TLS first. When that handshake fails, it tries once more with a second TLS implementation (zcrypto) that offers what an OpenSSL-based sender offers (finite-field DHE, RSA key exchange, TLS 1.0 to 1.2); a server only the second one completes has completed STARTTLS and is flagged tls-fallback-stack. A failed handshake is reported only when the server refused both. Where neither implementation can tell whether an OpenSSL-based sender would succeed (the server chose something neither implements), the address is flagged tls-not-judged and counted as not judged, never as plaintext.",
		"m_dnssec":                "DNSSEC trust assumption",
		"m_dnssec_text":           "DNSSEC results (secure MX and TLSA records, and so the dane verdict) rely on the AD bit of the validating resolver named above. The path between the scanner and that resolver is trusted; if the resolver were not validating or could be impersonated, dane verdicts would not hold.",
		"m_privacy":               "Privacy",
		"m_privacy_text":          "This report contains only aggregates and domain names: no e-mail addresses and no recipient ids. Text that came from DNS or from mail servers (host names, banners, certificate fields) is shown as text, never interpreted.",
		"footer":                  "Verdict words and flags are the public contract of docs/verdicts.md and are not translated.",

		"vshort_dane":        "DANE: safe against passive and active attackers",
		"vshort_mta-sts":     "MTA-STS enforce: safe against passive and active attackers",
		"vshort_verified":    "valid certificates: safe against eavesdroppers, STARTTLS can be stripped",
		"vshort_encrypted":   "encrypted, but a certificate is not valid: eavesdroppers only",
		"vshort_partial":     "some MX hosts encrypt, some do not",
		"vshort_plaintext":   "no MX host completes STARTTLS: every message in plaintext",
		"vshort_broken":      "published policy fails: policy-honouring senders cannot deliver",
		"vshort_no-mail":     "the domain accepts no mail",
		"vshort_unreachable": "no MX host answered: retried next run",
		"vshort_dns-error":   "DNS lookups failed: retried next run",
		"vshort_unknown":     "no verdict recorded",
		"vlong_dane":         "The MX RRset and every MX host's TLSA RRset are DNSSEC-secure, every MX host has at least one usable TLSA record (usage 2 or 3), and every reachable MX IP offered STARTTLS and presented a certificate that matches its TLSA records (RFC 7672). Safe against passive and active attackers.",
		"vlong_mta-sts":      "Not dane, but the domain publishes a valid MTA-STS policy in mode: enforce (RFC 8461), every MX host matches a policy mx: pattern, and every reachable MX IP offered STARTTLS with a PKIX-valid certificate for its MX host name. Safe against passive and active attackers (after the first fetch).",
		"vlong_verified":     "No enforced policy, but every reachable MX IP offered STARTTLS and presented a PKIX-valid certificate (chains to a trusted root, not expired, names the MX host name). Safe against passive eavesdroppers; an active attacker can strip STARTTLS.",
		"vlong_encrypted":    "Every reachable MX IP offered STARTTLS and completed the handshake, but at least one certificate is not PKIX-valid (self-signed, expired, wrong name, untrusted chain). Safe against passive eavesdroppers only.",
		"vlong_partial":      "Some reachable MX IPs complete STARTTLS and some do not (not offered, refused, or handshake failure). Whether a given message is encrypted depends on which MX the sender reaches.",
		"vlong_plaintext":    "At least one MX IP was reachable and none completed STARTTLS. Every message to this domain crosses the internet in plaintext.",
		"vlong_broken":       "The domain publishes an enforcement policy that its own servers fail: secure TLSA records that no presented certificate matches, or an MTA-STS enforce policy whose mx: patterns do not cover the MX hosts or whose hosts present invalid certificates. Senders that honour the policy will not deliver at all.",
		"vlong_no-mail":      "The domain does not accept mail: NXDOMAIN, a null MX (RFC 7505), or no MX and no address records.",
		"vlong_unreachable":  "MX hosts were found but no MX IP answered SMTP (connection refused or timed out, banner refused, dangling MX host names). TLS state unknown; retried on the next run.",
		"vlong_dns-error":    "The DNS lookups needed for a verdict failed after retries (SERVFAIL, timeout, DNSSEC validation failure). TLS state unknown; retried on the next run.",
		"vlong_unknown":      "Not a verdict: the run lists the domain but no verdict was recorded for it.",

		"t_summary":   "Verdicts",
		"t_whatif":    "What if (citizens)",
		"t_top":       "Top domains",
		"t_run":       "Run",
		"t_plaintext": "Citizens receiving plaintext mail today",
		"t_policy":    "Policy",
		"t_plain":     "Plaintext",
		"t_maybe":     "Partial",
		"t_bounce":    "Bounce",
		"t_safe":      "Safe (active)",
		"t_more":      "+{1} more domains: see --format csv",
	},
	"ja": {
		"title":                   "住民のメールアドレスに対するメール配送の暗号化状況",
		"run":                     "実行",
		"scan_started":            "調査開始",
		"scan_finished":           "終了",
		"generated":               "レポート作成",
		"offline_note":            "このレポートは単一のファイルで完結しています。ネットワークから何も読み込まず、オフラインで閲覧できます。",
		"nav_headline":            "概要",
		"nav_whatif":              "送信方針の試算",
		"nav_charts":              "グラフ",
		"nav_domains":             "ドメイン",
		"nav_changes":             "前回からの変化",
		"nav_reasons":             "理由",
		"nav_method":              "調査方法",
		"h_headline":              "概要",
		"kpi_plaintext_share":     "現在、平文でメールを受け取ることになる住民の割合",
		"kpi_plaintext_citizens":  "plaintext のドメインの住民",
		"kpi_partial_citizens":    "上記に加え、partial のドメインの住民（接続先の MX ホストによっては平文）",
		"kpi_citizens":            "住民（登録アドレス数）",
		"kpi_domains":             "受信ドメイン",
		"col_verdict":             "判定",
		"col_meaning":             "意味",
		"col_citizens":            "住民数",
		"col_domains":             "ドメイン数",
		"col_domain":              "ドメイン",
		"col_flags":               "フラグ",
		"col_flag":                "フラグ",
		"col_severity":            "重大度",
		"sev_critical":            "重大",
		"sevdef_critical":         "サーバーへのメールが平文で届く、またはドメイン自身のポリシーのためにポリシーを尊重する送信者が配送できない",
		"sev_warning":             "警告",
		"sevdef_warning":          "証明書を検証できない（暗号化にとどまる）、またはサーバーに到達できない・検索できない",
		"sev_notice":              "注意",
		"sevdef_notice":           "保護をより強くできる、または有効になっていない。あるいはメールを受け付けないドメイン",
		"sev_info":                "情報",
		"sevdef_info":             "判定の説明のみで、メールの届き方は変わらない",
		"col_details":             "詳細",
		"col_outcome":             "住民への影響",
		"col_status":              "調査結果",
		"col_cert":                "証明書",
		"col_problems":            "検証",
		"col_banner":              "バナー",
		"total":                   "合計",
		"h_whatif":                "ポータルが送信方針を変えた場合",
		"whatif_intro":            "住民をアドレスのドメインの判定ごとに数え、ポータルのメールゲートウェイの四つの送信方針について試算したものです。",
		"wi_plaintext":            "日和見的 TLS（現在の既定）で平文のメールを受け取る住民",
		"wi_plaintext_maybe":      "ほかに partial のドメインの住民 {1} 人が、接続先の MX ホストによっては平文で受け取ります",
		"wi_bounce_tls":           "TLS 必須（「TLS を強制」）にすると配送不能になる住民",
		"wi_bounce_tls_maybe":     "ほかに partial のドメインの住民 {1} 人が、接続先の MX ホストによっては配送不能または遅延になります",
		"wi_bounce_verified":      "検証済み TLS を必須にすると、さらに配送不能になる住民（無効な証明書）",
		"wi_safe_active":          "DANE/MTA-STS を尊重すれば能動的な攻撃者からも守られる住民",
		"wi_broken_fail":          "ただし、ポリシーに不備のあるドメインの住民 {1} 人にはまったく配送されません",
		"sc_opportunistic":        "日和見的 TLS（現在）",
		"sc_tls-required":         "TLS 必須",
		"sc_verified-required":    "検証済み TLS 必須",
		"sc_policy-honoured":      "DANE/MTA-STS を尊重",
		"scdef_opportunistic":     "受信サーバーが STARTTLS を提供していれば使い、証明書は何でも受け入れます。提供していなければ平文で配送します。DANE と MTA-STS は無視します。",
		"scdef_tls-required":      "STARTTLS でのみ配送します（証明書は問いません）。配信サービスの「TLS を強制」オプションに相当します。plaintext のドメインへのメールは配送不能になり、partial のドメインは接続した MX ホストが STARTTLS を完了しなければ配送不能または遅延となります。",
		"scdef_verified-required": "MX ホスト名に対して有効な証明書による STARTTLS でのみ配送します。plaintext のドメインに加え、encrypted のドメイン（無効な証明書）へのメールも配送不能になります。DNSSEC や MTA-STS がなければ、能動的な攻撃者は MX の検索結果を差し替えることができます。",
		"scdef_policy-honoured":   "日和見的 TLS ですが、DANE（RFC 7672）と MTA-STS（RFC 8461）を尊重します。dane と mta-sts のドメインの住民は能動的な攻撃者からも守られます。ポリシーに不備のあるドメインへのメールは配送されません。",
		"oc_protected":            "能動的な攻撃者からも保護",
		"oc_encrypted":            "暗号化（受動的な盗聴のみ防御）",
		"oc_plaintext":            "平文",
		"oc_partial":              "接続先の MX ホスト次第（partial）",
		"oc_bounced":              "方針により配送不能",
		"oc_broken_policy":        "ドメインのポリシーに不備（TLS は判定せず）",
		"oc_no_mail":              "メールを受け付けないドメイン（no-mail）",
		"oc_unknown":              "不明（unreachable、dns-error）",
		"h_charts":                "グラフ",
		"chart_verdict_citizens":  "判定ごとの住民数",
		"chart_verdict_domains":   "判定ごとのドメイン数",
		"chart_at_risk":           "平文メールの恐れがある住民が多いドメイン（plaintext、partial）",
		"chart_trend":             "推移：各実行における判定ごとの住民数（グラフごとに目盛りが異なります。右上の数字は今回の値）",
		"h_domains":               "住民数の多いドメイン",
		"domains_intro":           "住民数の多いドメインと、その MX ホスト、TLS バージョン、証明書、ポリシーです。全ドメインの一覧は CSV 出力（tlsready report --format csv）にあります。",
		"filter_verdict":          "判定",
		"filter_flag":             "フラグ",
		"filter_text":             "ドメイン名に含む",
		"all":                     "すべて",
		"shown":                   "表示中",
		"show":                    "表示",
		"show_mx":                 "表示（MX {1} 件）",
		"no_result":               "保存された結果なし",
		"dnssec_secure":           "DNSSEC で検証済み",
		"scanned":                 "調査日時",
		"pref":                    "優先度",
		"skipped":                 "未調査",
		"issuer":                  "発行者",
		"not_after":               "有効期限",
		"more_hosts":              "残りの MX ホストは CSV/JSON 出力にあります。",
		"present":                 "公開あり",
		"absent":                  "公開なし",
		"h_tail":                  "その他のドメイン",
		"tail_intro":              "上の表に含まれないもの",
		"tail_none":               "上の表に今回の全ドメインが含まれています。",
		"domains_word":            "件のドメイン",
		"citizens_word":           "人の住民",
		"h_changes":               "前回の実行からの変化",
		"changes_intro":           "前回の実行 #{1}（{2}）と比較しています。",
		"changes_none":            "比較できる過去の完了した実行がありません。",
		"ch_better":               "判定が改善",
		"ch_worse":                "判定が悪化",
		"ch_unchanged":            "変化なし",
		"ch_not_comparable":       "比較不能（unreachable、dns-error、unknown との間の変化）",
		"ch_new":                  "新しいドメイン",
		"ch_gone":                 "登録から消えたドメイン（前回の住民数）",
		"ch_plaintext_delta":      "plaintext のドメインの住民数の増減",
		"ch_top_worse":            "悪化したドメイン（住民数の多い順）",
		"ch_top_better":           "改善したドメイン（住民数の多い順）",
		"ch_from_to":              "前回 → 今回",
		"ch_note":                 "改善・悪化は調査方法に示す判定の順序に従います。一時的な判定（unreachable、dns-error）は TLS について何も示さないため、変化として数えません。",
		"h_reasons":               "理由（フラグ）",
		"reasons_intro":           "フラグは、ドメインがその判定になった理由を示す短い語で、今回の全ドメインについて数えています。重大なものから順に、同じ重大度の中では影響する住民の多い順に並べています。メールの届き方を何も変えない情報のフラグは最後です。",
		"none":                    "なし。",
		"h_method":                "調査方法",
		"m_what":                  "測定したもの",
		"m_what_text":             "登録された各ドメインについて、MX レコード（ない場合はドメイン自体）、そのアドレス、DNSSEC がある場合は TLSA レコードを調べました。各 MX アドレスには 25 番ポートで SMTP 接続し、バナーを読み、EHLO を送り、STARTTLS を要求して TLS ハンドシェイクを完了させ、証明書（信頼されたルートへの連鎖、有効期間、MX ホスト名、DANE のための TLSA レコード）を検証しました。メールは送信していません。各アドレスは、共有するドメインの数にかかわらず一回の実行につき一度だけ調査します。ドメインの MTA-STS ポリシーと TLS-RPT レコードも読み取りました。住民は登録アドレスのドメインごとに数えています。",
		"m_where":                 "調査地点と日時",
		"m_vantage":               "調査地点（HELO 名）",
		"m_resolver":              "DNS リゾルバー",
		"m_trust_ad_yes":          "その DNSSEC 検証（AD ビット）を信頼",
		"m_trust_ad_no":           "その DNSSEC 検証を信頼しないため、dane の判定なし",
		"m_period":                "調査期間",
		"m_version":               "スキャナーのバージョン",
		"m_counts":                "規模",
		"m_recipients":            "受信者",
		"m_bad_lines":             "使用できない行",
		"m_domains":               "ドメイン",
		"m_scanned":               "今回調査",
		"m_reused":                "最近の調査結果を再利用",
		"m_mxips":                 "MX アドレス",
		"m_connections":           "SMTP 接続",
		"m_verdicts":              "判定（良い順）",
		"m_verdicts_doc":          "各判定、境界事例を決める規則、すべてのフラグは tlsready リポジトリの docs/verdicts.md で定めています。",
		"m_whatif":                "試算の計算方法",
		"m_whatif_text":           "各住民は、今回の実行におけるアドレスのドメインの判定によって一度だけ数えます。日和見的 TLS：plaintext のドメインは平文で受け取り、partial のドメインは平文の可能性があります。TLS 必須：plaintext のドメインは配送不能、partial のドメインは配送不能または遅延の可能性があり、dane、mta-sts、verified、encrypted のドメインは暗号化されたメールを受け取ります。検証済み TLS 必須：encrypted のドメインも配送不能になります。DANE/MTA-STS を尊重：dane と mta-sts のドメインだけが能動的な攻撃者（STARTTLS の除去や MX 検索の差し替えができる者）から守られ、broken のドメインには配送されません。broken のドメインは最初の三つの方針では判定せず、no-mail のドメインはどの方針でもメールを受け付けず、unreachable と dns-error のドメインは不明とします。",
		"m_limits":                "スキャナーから見えないこと",
		"m_limit_relays":          "測定するのは最初の配送区間、つまりドメインの公開 MX サーバーだけです。事業者内部の中継や別アドレスへの転送は見えません。",
		"m_limit_vantage":         "調査は一つの地点から行いました。サーバーは送信元によって異なる応答をすることがあります（許可リスト、地域、同じアドレスの背後のロードバランサー）。",
		"m_limit_partial":         "partial のドメインでは、実際のメールがどの MX ホストに届くかは送信側の再試行の方法とその時の稼働状況によります。",
		"m_limit_temporary":       "unreachable と dns-error は一時的な判定です。TLS の状態は不明で、次回の実行で再測定します。",
		"m_limit_tls":             "スキャナーはまず Go の TLS を使います。そのハンドシェイクが失敗すると、OpenSSL ベースの送信者と同じもの（有限体 DHE、RSA 鍵交換、TLS 1.0〜1.2）を提示する第二の TLS 実装（zcrypto）でもう一度だけ試します。第二の実装でのみ完了したサーバーは STARTTLS 完了とし、tls-fallback-stack のフラグを付けます。ハンドシェイク失敗と報告するのは、サーバーが両方を拒否した場合だけです。OpenSSL ベースの送信者が成功するかをどちらの実装でも判断できない場合（どちらも実装していない方式をサーバーが選んだ場合）は、そのアドレスに tls-not-judged のフラグを付けて判定不能として数え、平文とは扱いません。",
		"m_dnssec":                "DNSSEC に関する前提",
		"m_dnssec_text":           "DNSSEC の結果（検証済みの MX と TLSA レコード、したがって dane 判定）は、上に記した検証リゾルバーの AD ビットに依存します。スキャナーとそのリゾルバーの間の経路は信頼されているものとします。リゾルバーが検証していない場合やなりすまされ得る場合、dane 判定は成り立ちません。",
		"m_privacy":               "プライバシー",
		"m_privacy_text":          "このレポートには集計値とドメイン名だけが含まれ、メールアドレスや受信者 ID は含まれません。DNS やメールサーバーから得た文字列（ホスト名、バナー、証明書の項目）は文字列として表示し、解釈はしません。",
		"footer":                  "判定の語とフラグは docs/verdicts.md で定めた公開の取り決めのため翻訳していません。",

		"vshort_dane":        "DANE：受動的・能動的な攻撃者の両方から安全",
		"vshort_mta-sts":     "MTA-STS enforce：受動的・能動的な攻撃者の両方から安全",
		"vshort_verified":    "有効な証明書：盗聴からは安全だが STARTTLS を除去され得る",
		"vshort_encrypted":   "暗号化されるが証明書が無効：盗聴のみ防御",
		"vshort_partial":     "暗号化する MX ホストとしない MX ホストが混在",
		"vshort_plaintext":   "どの MX ホストも STARTTLS を完了しない：すべてのメールが平文",
		"vshort_broken":      "公開ポリシーを自ら満たさない：ポリシーを尊重する送信者は配送不能",
		"vshort_no-mail":     "メールを受け付けないドメイン",
		"vshort_unreachable": "どの MX ホストも応答せず：次回再調査",
		"vshort_dns-error":   "DNS 検索に失敗：次回再調査",
		"vshort_unknown":     "判定の記録なし",
		"vlong_dane":         "MX レコードと各 MX ホストの TLSA レコードが DNSSEC で検証済みで、各 MX ホストに使用可能な TLSA レコード（用途 2 または 3）が少なくとも一つあり、到達可能なすべての MX IP が STARTTLS を提供し、TLSA レコードに一致する証明書を提示しました（RFC 7672）。受動的・能動的な攻撃者の両方から安全です。",
		"vlong_mta-sts":      "dane ではありませんが、ドメインが mode: enforce の有効な MTA-STS ポリシー（RFC 8461）を公開し、すべての MX ホストがポリシーの mx: パターンに一致し、到達可能なすべての MX IP が MX ホスト名に対して PKIX 上有効な証明書で STARTTLS を提供しました。受動的・能動的な攻撃者の両方から安全です（初回取得後）。",
		"vlong_verified":     "強制ポリシーはありませんが、到達可能なすべての MX IP が STARTTLS を提供し、PKIX 上有効な証明書（信頼されたルートに連鎖し、期限内で、MX ホスト名を含む）を提示しました。受動的な盗聴からは安全ですが、能動的な攻撃者は STARTTLS を除去できます。",
		"vlong_encrypted":    "到達可能なすべての MX IP が STARTTLS を提供してハンドシェイクを完了しましたが、少なくとも一つの証明書が PKIX 上有効ではありません（自己署名、期限切れ、名前の不一致、信頼されない連鎖）。受動的な盗聴のみ防げます。",
		"vlong_partial":      "到達可能な MX IP のうち、STARTTLS を完了するものとしないもの（提供なし、拒否、ハンドシェイク失敗）があります。個々のメールが暗号化されるかどうかは、送信者がどの MX に接続するかによります。",
		"vlong_plaintext":    "少なくとも一つの MX IP に到達でき、どれも STARTTLS を完了しませんでした。このドメインへのすべてのメールは平文でインターネットを通ります。",
		"vlong_broken":       "ドメインが強制ポリシーを公開しているのに、自らのサーバーがそれを満たしていません。検証済みの TLSA レコードに一致する証明書がない、または MTA-STS enforce ポリシーの mx: パターンが MX ホストを含まないか、ホストが無効な証明書を提示しています。ポリシーを尊重する送信者はまったく配送できません。",
		"vlong_no-mail":      "ドメインはメールを受け付けません：NXDOMAIN、null MX（RFC 7505）、または MX もアドレスレコードもありません。",
		"vlong_unreachable":  "MX ホストは見つかりましたが、どの MX IP も SMTP に応答しませんでした（接続拒否やタイムアウト、バナーでの拒否、アドレスのない MX ホスト名）。TLS の状態は不明で、次回の実行で再調査します。",
		"vlong_dns-error":    "判定に必要な DNS 検索が再試行後も失敗しました（SERVFAIL、タイムアウト、DNSSEC 検証の失敗）。TLS の状態は不明で、次回の実行で再調査します。",
		"vlong_unknown":      "判定ではありません：今回の実行にドメインはありますが、判定が記録されていません。",

		"t_summary":   "判定",
		"t_whatif":    "送信方針の試算（住民数）",
		"t_top":       "住民数の多いドメイン",
		"t_run":       "実行",
		"t_plaintext": "現在平文のメールを受け取る住民",
		"t_policy":    "方針",
		"t_plain":     "平文",
		"t_maybe":     "MX 次第",
		"t_bounce":    "配送不能",
		"t_safe":      "能動攻撃に安全",
		"t_more":      "ほかに {1} 件のドメインがあります（--format csv を参照）",
	},
}
