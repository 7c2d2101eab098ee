using System.Net;
using System.Net.Sockets;
using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using Xunit.Sdk;

namespace WinTok.IntegrationTests;

/// <summary>
/// A real `wintok dashboard` child process on a free loopback port, and Debian's headless Chromium driven through
/// Debian's chromedriver (deploy/browser.sh installs both; nothing is downloaded). Screenshots go to
/// <c>TestResults/dashboard/</c> at the repository root (CI keeps it as an artifact). A machine without the browser
/// skips the browser tests, except on CI, where that fails them.
/// </summary>
internal sealed class DashboardSite : IAsyncDisposable
{
    public const string Chromium = "/usr/bin/chromium";
    public const string ChromeDriver = "/usr/bin/chromedriver";

    private readonly WorkerProcess process;
    private readonly ChromeDriver? browser;

    private DashboardSite(WorkerProcess process, Uri address, ChromeDriver? browser)
    {
        this.process = process;
        this.browser = browser;
        Address = address;
    }

    public Uri Address { get; }

    public IWebDriver Browser => browser ?? throw new InvalidOperationException("This site was started without a browser");

    public string Log => process.Log;

    /// <summary>Where screenshots go: TestResults/dashboard/ beside the solution.</summary>
    public static string ScreenshotFolder { get; } = Path.Combine(
        Path.GetDirectoryName(Path.GetDirectoryName(ServicesFixture.ServicesScript))!, "TestResults", "dashboard");

    /// <summary>Skips (locally) or fails (CI) unless Chromium and its driver are installed.</summary>
    public static void RequireBrowser()
    {
        if (File.Exists(Chromium) && File.Exists(ChromeDriver)) return;
        const string message = $"{Chromium} and {ChromeDriver} are needed for the browser tests (run: bash deploy/browser.sh)";
        if (Environment.GetEnvironmentVariable("CI") is { Length: > 0 }) Assert.Fail(message);
        Assert.Skip(message);
    }

    /// <summary>Starts <c>wintok dashboard {arguments} --urls http://127.0.0.1:PORT</c> and waits until it answers; with a browser when asked.</summary>
    public static async Task<DashboardSite> StartAsync(IEnumerable<string> arguments, IReadOnlyDictionary<string, string> environment, bool withBrowser)
    {
        var address = new Uri($"http://127.0.0.1:{FreePort()}");
        var process = WorkerProcess.Start("dashboard", ["dashboard", .. arguments, "--urls", address.ToString().TrimEnd('/')], environment);
        using var http = new HttpClient { BaseAddress = address };
        var up = await ServicesFixture.EventuallyAsync(async () =>
        {
            if (process.HasExited) return true;
            try
            {
                return (await http.GetAsync("/healthz", TestContext.Current.CancellationToken)).StatusCode == HttpStatusCode.OK;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(60));
        if (!up || process.HasExited)
        {
            var log = process.Log;
            await process.DisposeAsync();
            throw new XunitException($"wintok dashboard did not start:\n{log}");
        }
        return new DashboardSite(process, address, withBrowser ? StartBrowser() : null);
    }

    /// <summary>Opens <paramref name="path"/> and waits for the document to be complete.</summary>
    public void Open(string path)
    {
        Browser.Navigate().GoToUrl(new Uri(Address, path));
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (((IJavaScriptExecutor)Browser).ExecuteScript("return document.readyState") as string != "complete")
        {
            if (DateTime.UtcNow > deadline) throw new XunitException($"{path} did not finish loading");
            Thread.Sleep(50);
        }
    }

    /// <summary>Saves a full-window screenshot as TestResults/dashboard/{name}.png; returns its path.</summary>
    public string Screenshot(string name)
    {
        Directory.CreateDirectory(ScreenshotFolder);
        var path = Path.Combine(ScreenshotFolder, $"{name}.png");
        ((ITakesScreenshot)Browser).GetScreenshot().SaveAsFile(path);
        TestContext.Current.TestOutputHelper?.WriteLine($"screenshot: {path}");
        return path;
    }

    /// <summary>Whether the page raised an alert (a hostile string that ran as script would).</summary>
    public bool AlertShown()
    {
        try
        {
            Browser.SwitchTo().Alert();
            return true;
        }
        catch (NoAlertPresentException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        browser?.Quit();
        browser?.Dispose();
        await process.DisposeAsync();
    }

    private static ChromeDriver StartBrowser()
    {
        // The Debian driver by path: Selenium Manager (which downloads drivers) never runs.
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(ChromeDriver)!, Path.GetFileName(ChromeDriver));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        var options = new ChromeOptions { BinaryLocation = Chromium };
        // --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        options.AddArguments("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1000",
            "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run", "--disable-extensions");
        options.UnhandledPromptBehavior = UnhandledPromptBehavior.Ignore;
        return new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
