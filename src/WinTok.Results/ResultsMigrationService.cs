using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace WinTok.Results;

/// <summary>Migrates the results database in <see cref="StartAsync"/>, before any consumer starts taking messages.</summary>
internal sealed class ResultsMigrationService(ResultsDatabaseMigrator migrator, IOptions<ResultsDatabaseOptions> options) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (options.Value.MigrateOnStart)
        {
            await migrator.MigrateAsync(cancellationToken);
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
