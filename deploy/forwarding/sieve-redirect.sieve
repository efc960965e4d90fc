# Sieve (Dovecot Pigeonhole, Fastmail, …) in the seller's mailbox: pass Amazon's blocked-message
# notices on unchanged. A redirect keeps Amazon's headers and DKIM signature intact, which
# inbox-daemon records as verified evidence.
require ["regex", "copy"];

if allof (
    address :domain :regex "from" "^amazon\\.(com|ca|com\\.mx|com\\.br|co\\.uk|de|fr|it|es|nl|se|pl|com\\.tr|com\\.be|ie|ae|sa|eg|in|co\\.jp|sg|com\\.au)$",
    anyof (
        header :contains "subject" "could not be delivered",
        header :contains "subject" "n'a pas pu être transmis",
        header :contains "subject" "送信できませんでした",
        header :contains "subject" "konnte nicht zugestellt werden",
        header :contains "subject" "non è stato possibile recapitare",
        header :contains "subject" "no se ha podido entregar"
    )
) {
    # Keep a copy in the seller's mailbox too.
    redirect :copy "optout@sellers.example";
}
