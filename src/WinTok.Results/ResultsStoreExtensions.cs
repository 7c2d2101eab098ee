using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;
using WinTok.ServiceDefaults;


namespace WinTok.Results;

public static class ResultsStoreExtensions
{
    /// <summary>
    /// The results database from <c>ResultsDatabase</c> (provider, connection string; <c>WINTOK_POSTGRES</c> when no
    /// connection string is configured), its migrator (run at start unless <c>MigrateOnStart</c> is false) and
    /// <see cref="ResultsRepository"/>. PostgreSQL goes through one singleton <see cref="NpgsqlDataSource"/>.
    /// </summary>
    public static IHostApplicationBuilder AddResultsStore(this IHostApplicationBuilder builder)
    {
        builder.AddRetryPipeline(ResultsDatabase.PipelineKey, ResultsDatabase.IsTransient);
        var configuration = builder.Configuration;
        builder.Services.AddOptions<ResultsDatabaseOptions>()
            .BindConfiguration(ResultsDatabaseOptions.SectionName)
            .PostConfigure(options =>
            {
                if (options.ConnectionString is null && configuration["WINTOK_POSTGRES"] is { Length: > 0 } postgres)
                {
                    options.ConnectionString = postgres;
                    options.Provider ??= ResultsProvider.Postgres;
                }
            })
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<ResultsDatabaseOptions>, ResultsDatabaseOptionsValidator>());
        builder.Services.TryAddSingleton(services =>
        {
            var options = services.GetRequiredService<IOptions<ResultsDatabaseOptions>>().Value;
            return new NpgsqlDataSourceBuilder(options.ConnectionString).Build();
        });
        builder.Services.TryAddSingleton<ResultsDatabase>();
        builder.Services.TryAddSingleton<ResultsDatabaseMigrator>();
        builder.Services.TryAddSingleton<ResultsRepository>();
        builder.Services.TryAddSingleton<EvaluationsRepository>();
        builder.Services.TryAddSingleton<SchedulesRepository>();
        builder.Services.TryAddSingleton<WorkersRepository>();
        builder.Services.TryAddSingleton<TrainingMetricsRepository>();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, ResultsMigrationService>());
        return builder;
    }
}
