[assembly: AssemblyFixture(typeof(WinTok.IntegrationTests.TestHome))]

namespace WinTok.IntegrationTests;

/// <summary>
/// The HOME of every `wintok` process the tests start: a folder of this test run, removed when the run ends, so what the
/// CLI keeps per user (~/.wintok's results database and list of local runs, ~/.cache/wintok's statistics) never lands in
/// the home of whoever runs the tests.
/// </summary>
public sealed class TestHome : IDisposable
{
    private static readonly Lazy<string> Created = new(() => Directory.CreateTempSubdirectory("wintok-test-home-").FullName);

    public static string Folder => Created.Value;

    public void Dispose()
    {
        if (Created.IsValueCreated && Directory.Exists(Created.Value)) Directory.Delete(Created.Value, recursive: true);
    }
}
