package console

import (
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/nexus-broker/nexus/shared/ratelimit"
)

// loginCounts count sign-in attempts in admin.rate_limits, where every admin
// replica sees them.
func loginCounts(pool *pgxpool.Pool) ratelimit.Postgres {
	return ratelimit.Postgres{Pool: pool, Table: pgx.Identifier{"admin", "rate_limits"}}
}
