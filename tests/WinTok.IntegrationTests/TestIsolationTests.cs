using Npgsql;

namespace WinTok.IntegrationTests;

/// <summary>
/// The tests leave nothing a user then meets: their jobs go to databases of their own, never the one WINTOK_POSTGRES
/// names (where <c>wintok jobs list</c> looks), and the private Azurite the outage test stops is stopped again when the
/// test that started it ends.
/// </summary>
[Collection(ServicesCollection.Name)]
public sealed class TestIsolationTests(ServicesFixture services)
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Postgres_IsADatabaseOfTheTestsOwnOnTheConfiguredServer_NeverTheOneWintokPostgresNames()
    {
        await services.RequirePostgresAsync();
        var configured = new NpgsqlConnectionStringBuilder(Environment.GetEnvironmentVariable("WINTOK_POSTGRES")
            ?? "Host=127.0.0.1;Port=5433;Username=postgres;Database=wintok");
        var tests = new NpgsqlConnectionStringBuilder(services.Postgres);

        Assert.Equal((configured.Host, configured.Port), (tests.Host, tests.Port));
        Assert.Equal(configured.Database, ServicesFixture.UserDatabase);
        Assert.Equal(configured.Database + ServicesFixture.TestDatabaseSuffix, tests.Database);
        await using (var connection = new NpgsqlConnection(services.Postgres))
        {
            await connection.OpenAsync(Token); // RequirePostgresAsync created it
            Assert.Equal(tests.Database, connection.Database);
        }
        var refusal = await Assert.ThrowsAsync<InvalidOperationException>(() => ServicesFixture.CreateDatabaseAsync(services.Postgres, configured.Database!));
        Assert.Contains("WINTOK_POSTGRES", refusal.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<InvalidOperationException>(() => ServicesFixture.ResetDatabaseAsync(configured.ConnectionString));
    }

    [Fact]
    public async Task PrivateAzurite_WhenDisposed_IsStoppedAndItsPortClosed()
    {
        await using (var azurite = await PrivateAzurite.StartAsync())
        {
            Assert.Contains($":{PrivateAzurite.Port}/", azurite.ConnectionString, StringComparison.Ordinal);
            Assert.True(await ServicesFixture.IsListeningAsync(PrivateAzurite.Port), "the private Azurite did not start");
        }

        Assert.False(await ServicesFixture.IsListeningAsync(PrivateAzurite.Port), $"port {PrivateAzurite.Port} still answers after the private Azurite was disposed");
    }
}
