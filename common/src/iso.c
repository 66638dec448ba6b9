/*  iso: reference tables for validation and totals. ISO 3166-1 alpha-2
 *  codes with their UN geoscheme (M49) region, and ISO 4217 currencies with
 *  their minor-unit exponent. Const, sorted, binary-searched; no allocation.
 */
#include <string.h>

#include "amity/iso.h"

typedef struct {
    char code[3];       /* alpha-2, NUL-terminated */
    const char *region; /* M49 region name, "" for none */
} s_country_t;

typedef struct {
    char code[4]; /* alpha-3, NUL-terminated */
    int exponent; /* digits after the decimal point */
} s_currency_t;

#define S_AFRICA   "africa"
#define S_AMERICAS "americas"
#define S_ASIA     "asia"
#define S_EUROPE   "europe"
#define S_OCEANIA  "oceania"
/* M49 puts Antarctica (AQ) in no region; it is a valid code with geo "" */
#define S_NONE ""

/*
 * Every officially assigned ISO 3166-1 alpha-2 code (249), sorted. Regions
 * follow the UN M49 standard country or area codes; territories follow
 * M49's own placement (IO, TF: Eastern Africa; BV, GS: South America;
 * HM, CC, CX: Australia and New Zealand; UM: Micronesia; GL: Northern
 * America; CY, TR: Western Asia; RU: Eastern Europe). TW, which M49 does
 * not list, is placed in Eastern Asia. User-assigned codes such as XK are
 * not assigned and are unknown here.
 */
static const s_country_t s_countries[] = {
    { "AD", S_EUROPE },   /* Andorra */
    { "AE", S_ASIA },     /* United Arab Emirates */
    { "AF", S_ASIA },     /* Afghanistan */
    { "AG", S_AMERICAS }, /* Antigua and Barbuda */
    { "AI", S_AMERICAS }, /* Anguilla */
    { "AL", S_EUROPE },   /* Albania */
    { "AM", S_ASIA },     /* Armenia */
    { "AO", S_AFRICA },   /* Angola */
    { "AQ", S_NONE },     /* Antarctica */
    { "AR", S_AMERICAS }, /* Argentina */
    { "AS", S_OCEANIA },  /* American Samoa */
    { "AT", S_EUROPE },   /* Austria */
    { "AU", S_OCEANIA },  /* Australia */
    { "AW", S_AMERICAS }, /* Aruba */
    { "AX", S_EUROPE },   /* Åland Islands */
    { "AZ", S_ASIA },     /* Azerbaijan */
    { "BA", S_EUROPE },   /* Bosnia and Herzegovina */
    { "BB", S_AMERICAS }, /* Barbados */
    { "BD", S_ASIA },     /* Bangladesh */
    { "BE", S_EUROPE },   /* Belgium */
    { "BF", S_AFRICA },   /* Burkina Faso */
    { "BG", S_EUROPE },   /* Bulgaria */
    { "BH", S_ASIA },     /* Bahrain */
    { "BI", S_AFRICA },   /* Burundi */
    { "BJ", S_AFRICA },   /* Benin */
    { "BL", S_AMERICAS }, /* Saint Barthélemy */
    { "BM", S_AMERICAS }, /* Bermuda */
    { "BN", S_ASIA },     /* Brunei Darussalam */
    { "BO", S_AMERICAS }, /* Bolivia, Plurinational State of */
    { "BQ", S_AMERICAS }, /* Bonaire, Sint Eustatius and Saba */
    { "BR", S_AMERICAS }, /* Brazil */
    { "BS", S_AMERICAS }, /* Bahamas */
    { "BT", S_ASIA },     /* Bhutan */
    { "BV", S_AMERICAS }, /* Bouvet Island */
    { "BW", S_AFRICA },   /* Botswana */
    { "BY", S_EUROPE },   /* Belarus */
    { "BZ", S_AMERICAS }, /* Belize */
    { "CA", S_AMERICAS }, /* Canada */
    { "CC", S_OCEANIA },  /* Cocos (Keeling) Islands */
    { "CD", S_AFRICA },   /* Congo, The Democratic Republic of the */
    { "CF", S_AFRICA },   /* Central African Republic */
    { "CG", S_AFRICA },   /* Congo */
    { "CH", S_EUROPE },   /* Switzerland */
    { "CI", S_AFRICA },   /* Côte d'Ivoire */
    { "CK", S_OCEANIA },  /* Cook Islands */
    { "CL", S_AMERICAS }, /* Chile */
    { "CM", S_AFRICA },   /* Cameroon */
    { "CN", S_ASIA },     /* China */
    { "CO", S_AMERICAS }, /* Colombia */
    { "CR", S_AMERICAS }, /* Costa Rica */
    { "CU", S_AMERICAS }, /* Cuba */
    { "CV", S_AFRICA },   /* Cabo Verde */
    { "CW", S_AMERICAS }, /* Curaçao */
    { "CX", S_OCEANIA },  /* Christmas Island */
    { "CY", S_ASIA },     /* Cyprus */
    { "CZ", S_EUROPE },   /* Czechia */
    { "DE", S_EUROPE },   /* Germany */
    { "DJ", S_AFRICA },   /* Djibouti */
    { "DK", S_EUROPE },   /* Denmark */
    { "DM", S_AMERICAS }, /* Dominica */
    { "DO", S_AMERICAS }, /* Dominican Republic */
    { "DZ", S_AFRICA },   /* Algeria */
    { "EC", S_AMERICAS }, /* Ecuador */
    { "EE", S_EUROPE },   /* Estonia */
    { "EG", S_AFRICA },   /* Egypt */
    { "EH", S_AFRICA },   /* Western Sahara */
    { "ER", S_AFRICA },   /* Eritrea */
    { "ES", S_EUROPE },   /* Spain */
    { "ET", S_AFRICA },   /* Ethiopia */
    { "FI", S_EUROPE },   /* Finland */
    { "FJ", S_OCEANIA },  /* Fiji */
    { "FK", S_AMERICAS }, /* Falkland Islands (Malvinas) */
    { "FM", S_OCEANIA },  /* Micronesia, Federated States of */
    { "FO", S_EUROPE },   /* Faroe Islands */
    { "FR", S_EUROPE },   /* France */
    { "GA", S_AFRICA },   /* Gabon */
    { "GB", S_EUROPE },   /* United Kingdom */
    { "GD", S_AMERICAS }, /* Grenada */
    { "GE", S_ASIA },     /* Georgia */
    { "GF", S_AMERICAS }, /* French Guiana */
    { "GG", S_EUROPE },   /* Guernsey */
    { "GH", S_AFRICA },   /* Ghana */
    { "GI", S_EUROPE },   /* Gibraltar */
    { "GL", S_AMERICAS }, /* Greenland */
    { "GM", S_AFRICA },   /* Gambia */
    { "GN", S_AFRICA },   /* Guinea */
    { "GP", S_AMERICAS }, /* Guadeloupe */
    { "GQ", S_AFRICA },   /* Equatorial Guinea */
    { "GR", S_EUROPE },   /* Greece */
    { "GS", S_AMERICAS }, /* South Georgia and the South Sandwich Islands */
    { "GT", S_AMERICAS }, /* Guatemala */
    { "GU", S_OCEANIA },  /* Guam */
    { "GW", S_AFRICA },   /* Guinea-Bissau */
    { "GY", S_AMERICAS }, /* Guyana */
    { "HK", S_ASIA },     /* Hong Kong */
    { "HM", S_OCEANIA },  /* Heard Island and McDonald Islands */
    { "HN", S_AMERICAS }, /* Honduras */
    { "HR", S_EUROPE },   /* Croatia */
    { "HT", S_AMERICAS }, /* Haiti */
    { "HU", S_EUROPE },   /* Hungary */
    { "ID", S_ASIA },     /* Indonesia */
    { "IE", S_EUROPE },   /* Ireland */
    { "IL", S_ASIA },     /* Israel */
    { "IM", S_EUROPE },   /* Isle of Man */
    { "IN", S_ASIA },     /* India */
    { "IO", S_AFRICA },   /* British Indian Ocean Territory */
    { "IQ", S_ASIA },     /* Iraq */
    { "IR", S_ASIA },     /* Iran, Islamic Republic of */
    { "IS", S_EUROPE },   /* Iceland */
    { "IT", S_EUROPE },   /* Italy */
    { "JE", S_EUROPE },   /* Jersey */
    { "JM", S_AMERICAS }, /* Jamaica */
    { "JO", S_ASIA },     /* Jordan */
    { "JP", S_ASIA },     /* Japan */
    { "KE", S_AFRICA },   /* Kenya */
    { "KG", S_ASIA },     /* Kyrgyzstan */
    { "KH", S_ASIA },     /* Cambodia */
    { "KI", S_OCEANIA },  /* Kiribati */
    { "KM", S_AFRICA },   /* Comoros */
    { "KN", S_AMERICAS }, /* Saint Kitts and Nevis */
    { "KP", S_ASIA },     /* Korea, Democratic People's Republic of */
    { "KR", S_ASIA },     /* Korea, Republic of */
    { "KW", S_ASIA },     /* Kuwait */
    { "KY", S_AMERICAS }, /* Cayman Islands */
    { "KZ", S_ASIA },     /* Kazakhstan */
    { "LA", S_ASIA },     /* Lao People's Democratic Republic */
    { "LB", S_ASIA },     /* Lebanon */
    { "LC", S_AMERICAS }, /* Saint Lucia */
    { "LI", S_EUROPE },   /* Liechtenstein */
    { "LK", S_ASIA },     /* Sri Lanka */
    { "LR", S_AFRICA },   /* Liberia */
    { "LS", S_AFRICA },   /* Lesotho */
    { "LT", S_EUROPE },   /* Lithuania */
    { "LU", S_EUROPE },   /* Luxembourg */
    { "LV", S_EUROPE },   /* Latvia */
    { "LY", S_AFRICA },   /* Libya */
    { "MA", S_AFRICA },   /* Morocco */
    { "MC", S_EUROPE },   /* Monaco */
    { "MD", S_EUROPE },   /* Moldova, Republic of */
    { "ME", S_EUROPE },   /* Montenegro */
    { "MF", S_AMERICAS }, /* Saint Martin (French part) */
    { "MG", S_AFRICA },   /* Madagascar */
    { "MH", S_OCEANIA },  /* Marshall Islands */
    { "MK", S_EUROPE },   /* North Macedonia */
    { "ML", S_AFRICA },   /* Mali */
    { "MM", S_ASIA },     /* Myanmar */
    { "MN", S_ASIA },     /* Mongolia */
    { "MO", S_ASIA },     /* Macao */
    { "MP", S_OCEANIA },  /* Northern Mariana Islands */
    { "MQ", S_AMERICAS }, /* Martinique */
    { "MR", S_AFRICA },   /* Mauritania */
    { "MS", S_AMERICAS }, /* Montserrat */
    { "MT", S_EUROPE },   /* Malta */
    { "MU", S_AFRICA },   /* Mauritius */
    { "MV", S_ASIA },     /* Maldives */
    { "MW", S_AFRICA },   /* Malawi */
    { "MX", S_AMERICAS }, /* Mexico */
    { "MY", S_ASIA },     /* Malaysia */
    { "MZ", S_AFRICA },   /* Mozambique */
    { "NA", S_AFRICA },   /* Namibia */
    { "NC", S_OCEANIA },  /* New Caledonia */
    { "NE", S_AFRICA },   /* Niger */
    { "NF", S_OCEANIA },  /* Norfolk Island */
    { "NG", S_AFRICA },   /* Nigeria */
    { "NI", S_AMERICAS }, /* Nicaragua */
    { "NL", S_EUROPE },   /* Netherlands */
    { "NO", S_EUROPE },   /* Norway */
    { "NP", S_ASIA },     /* Nepal */
    { "NR", S_OCEANIA },  /* Nauru */
    { "NU", S_OCEANIA },  /* Niue */
    { "NZ", S_OCEANIA },  /* New Zealand */
    { "OM", S_ASIA },     /* Oman */
    { "PA", S_AMERICAS }, /* Panama */
    { "PE", S_AMERICAS }, /* Peru */
    { "PF", S_OCEANIA },  /* French Polynesia */
    { "PG", S_OCEANIA },  /* Papua New Guinea */
    { "PH", S_ASIA },     /* Philippines */
    { "PK", S_ASIA },     /* Pakistan */
    { "PL", S_EUROPE },   /* Poland */
    { "PM", S_AMERICAS }, /* Saint Pierre and Miquelon */
    { "PN", S_OCEANIA },  /* Pitcairn */
    { "PR", S_AMERICAS }, /* Puerto Rico */
    { "PS", S_ASIA },     /* Palestine, State of */
    { "PT", S_EUROPE },   /* Portugal */
    { "PW", S_OCEANIA },  /* Palau */
    { "PY", S_AMERICAS }, /* Paraguay */
    { "QA", S_ASIA },     /* Qatar */
    { "RE", S_AFRICA },   /* Réunion */
    { "RO", S_EUROPE },   /* Romania */
    { "RS", S_EUROPE },   /* Serbia */
    { "RU", S_EUROPE },   /* Russian Federation */
    { "RW", S_AFRICA },   /* Rwanda */
    { "SA", S_ASIA },     /* Saudi Arabia */
    { "SB", S_OCEANIA },  /* Solomon Islands */
    { "SC", S_AFRICA },   /* Seychelles */
    { "SD", S_AFRICA },   /* Sudan */
    { "SE", S_EUROPE },   /* Sweden */
    { "SG", S_ASIA },     /* Singapore */
    { "SH", S_AFRICA },   /* Saint Helena, Ascension and Tristan da Cunha */
    { "SI", S_EUROPE },   /* Slovenia */
    { "SJ", S_EUROPE },   /* Svalbard and Jan Mayen */
    { "SK", S_EUROPE },   /* Slovakia */
    { "SL", S_AFRICA },   /* Sierra Leone */
    { "SM", S_EUROPE },   /* San Marino */
    { "SN", S_AFRICA },   /* Senegal */
    { "SO", S_AFRICA },   /* Somalia */
    { "SR", S_AMERICAS }, /* Suriname */
    { "SS", S_AFRICA },   /* South Sudan */
    { "ST", S_AFRICA },   /* Sao Tome and Principe */
    { "SV", S_AMERICAS }, /* El Salvador */
    { "SX", S_AMERICAS }, /* Sint Maarten (Dutch part) */
    { "SY", S_ASIA },     /* Syrian Arab Republic */
    { "SZ", S_AFRICA },   /* Eswatini */
    { "TC", S_AMERICAS }, /* Turks and Caicos Islands */
    { "TD", S_AFRICA },   /* Chad */
    { "TF", S_AFRICA },   /* French Southern Territories */
    { "TG", S_AFRICA },   /* Togo */
    { "TH", S_ASIA },     /* Thailand */
    { "TJ", S_ASIA },     /* Tajikistan */
    { "TK", S_OCEANIA },  /* Tokelau */
    { "TL", S_ASIA },     /* Timor-Leste */
    { "TM", S_ASIA },     /* Turkmenistan */
    { "TN", S_AFRICA },   /* Tunisia */
    { "TO", S_OCEANIA },  /* Tonga */
    { "TR", S_ASIA },     /* Türkiye */
    { "TT", S_AMERICAS }, /* Trinidad and Tobago */
    { "TV", S_OCEANIA },  /* Tuvalu */
    { "TW", S_ASIA },     /* Taiwan, Province of China */
    { "TZ", S_AFRICA },   /* Tanzania, United Republic of */
    { "UA", S_EUROPE },   /* Ukraine */
    { "UG", S_AFRICA },   /* Uganda */
    { "UM", S_OCEANIA },  /* United States Minor Outlying Islands */
    { "US", S_AMERICAS }, /* United States */
    { "UY", S_AMERICAS }, /* Uruguay */
    { "UZ", S_ASIA },     /* Uzbekistan */
    { "VA", S_EUROPE },   /* Holy See (Vatican City State) */
    { "VC", S_AMERICAS }, /* Saint Vincent and the Grenadines */
    { "VE", S_AMERICAS }, /* Venezuela, Bolivarian Republic of */
    { "VG", S_AMERICAS }, /* Virgin Islands, British */
    { "VI", S_AMERICAS }, /* Virgin Islands, U.S. */
    { "VN", S_ASIA },     /* Viet Nam */
    { "VU", S_OCEANIA },  /* Vanuatu */
    { "WF", S_OCEANIA },  /* Wallis and Futuna */
    { "WS", S_OCEANIA },  /* Samoa */
    { "YE", S_ASIA },     /* Yemen */
    { "YT", S_AFRICA },   /* Mayotte */
    { "ZA", S_AFRICA },   /* South Africa */
    { "ZM", S_AFRICA },   /* Zambia */
    { "ZW", S_AFRICA },   /* Zimbabwe */
};

/*
 * Active ISO 4217 currencies (list one), sorted, with their minor units.
 * Codes whose minor unit is "N.A." (precious metals XAU XAG XPD XPT, the
 * bond-market units XBA..XBD, XDR, XSU, XUA, the testing code XTS and XXX)
 * cannot carry an exact money amount and are left out. Currencies in a
 * changeover are both kept while the old one is still in the list (ANG and
 * XCG, SLL and SLE, ZWL and ZWG); withdrawn ones (HRK, replaced by EUR in
 * 2023) are not.
 */
static const s_currency_t s_currencies[] = {
    { "AED", 2 }, /* UAE Dirham */
    { "AFN", 2 }, /* Afghani */
    { "ALL", 2 }, /* Lek */
    { "AMD", 2 }, /* Armenian Dram */
    { "ANG", 2 }, /* Netherlands Antillean Guilder */
    { "AOA", 2 }, /* Kwanza */
    { "ARS", 2 }, /* Argentine Peso */
    { "AUD", 2 }, /* Australian Dollar */
    { "AWG", 2 }, /* Aruban Florin */
    { "AZN", 2 }, /* Azerbaijan Manat */
    { "BAM", 2 }, /* Convertible Mark */
    { "BBD", 2 }, /* Barbados Dollar */
    { "BDT", 2 }, /* Taka */
    { "BGN", 2 }, /* Bulgarian Lev */
    { "BHD", 3 }, /* Bahraini Dinar */
    { "BIF", 0 }, /* Burundi Franc */
    { "BMD", 2 }, /* Bermudian Dollar */
    { "BND", 2 }, /* Brunei Dollar */
    { "BOB", 2 }, /* Boliviano */
    { "BOV", 2 }, /* Mvdol */
    { "BRL", 2 }, /* Brazilian Real */
    { "BSD", 2 }, /* Bahamian Dollar */
    { "BTN", 2 }, /* Ngultrum */
    { "BWP", 2 }, /* Pula */
    { "BYN", 2 }, /* Belarusian Ruble */
    { "BZD", 2 }, /* Belize Dollar */
    { "CAD", 2 }, /* Canadian Dollar */
    { "CDF", 2 }, /* Congolese Franc */
    { "CHE", 2 }, /* WIR Euro */
    { "CHF", 2 }, /* Swiss Franc */
    { "CHW", 2 }, /* WIR Franc */
    { "CLF", 4 }, /* Unidad de Fomento */
    { "CLP", 0 }, /* Chilean Peso */
    { "CNY", 2 }, /* Yuan Renminbi */
    { "COP", 2 }, /* Colombian Peso */
    { "COU", 2 }, /* Unidad de Valor Real */
    { "CRC", 2 }, /* Costa Rican Colon */
    { "CUC", 2 }, /* Peso Convertible */
    { "CUP", 2 }, /* Cuban Peso */
    { "CVE", 2 }, /* Cabo Verde Escudo */
    { "CZK", 2 }, /* Czech Koruna */
    { "DJF", 0 }, /* Djibouti Franc */
    { "DKK", 2 }, /* Danish Krone */
    { "DOP", 2 }, /* Dominican Peso */
    { "DZD", 2 }, /* Algerian Dinar */
    { "EGP", 2 }, /* Egyptian Pound */
    { "ERN", 2 }, /* Nakfa */
    { "ETB", 2 }, /* Ethiopian Birr */
    { "EUR", 2 }, /* Euro */
    { "FJD", 2 }, /* Fiji Dollar */
    { "FKP", 2 }, /* Falkland Islands Pound */
    { "GBP", 2 }, /* Pound Sterling */
    { "GEL", 2 }, /* Lari */
    { "GHS", 2 }, /* Ghana Cedi */
    { "GIP", 2 }, /* Gibraltar Pound */
    { "GMD", 2 }, /* Dalasi */
    { "GNF", 0 }, /* Guinean Franc */
    { "GTQ", 2 }, /* Quetzal */
    { "GYD", 2 }, /* Guyana Dollar */
    { "HKD", 2 }, /* Hong Kong Dollar */
    { "HNL", 2 }, /* Lempira */
    { "HTG", 2 }, /* Gourde */
    { "HUF", 2 }, /* Forint */
    { "IDR", 2 }, /* Rupiah */
    { "ILS", 2 }, /* New Israeli Sheqel */
    { "INR", 2 }, /* Indian Rupee */
    { "IQD", 3 }, /* Iraqi Dinar */
    { "IRR", 2 }, /* Iranian Rial */
    { "ISK", 0 }, /* Iceland Krona */
    { "JMD", 2 }, /* Jamaican Dollar */
    { "JOD", 3 }, /* Jordanian Dinar */
    { "JPY", 0 }, /* Yen */
    { "KES", 2 }, /* Kenyan Shilling */
    { "KGS", 2 }, /* Som */
    { "KHR", 2 }, /* Riel */
    { "KMF", 0 }, /* Comorian Franc */
    { "KPW", 2 }, /* North Korean Won */
    { "KRW", 0 }, /* Won */
    { "KWD", 3 }, /* Kuwaiti Dinar */
    { "KYD", 2 }, /* Cayman Islands Dollar */
    { "KZT", 2 }, /* Tenge */
    { "LAK", 2 }, /* Lao Kip */
    { "LBP", 2 }, /* Lebanese Pound */
    { "LKR", 2 }, /* Sri Lanka Rupee */
    { "LRD", 2 }, /* Liberian Dollar */
    { "LSL", 2 }, /* Loti */
    { "LYD", 3 }, /* Libyan Dinar */
    { "MAD", 2 }, /* Moroccan Dirham */
    { "MDL", 2 }, /* Moldovan Leu */
    { "MGA", 2 }, /* Malagasy Ariary */
    { "MKD", 2 }, /* Denar */
    { "MMK", 2 }, /* Kyat */
    { "MNT", 2 }, /* Tugrik */
    { "MOP", 2 }, /* Pataca */
    { "MRU", 2 }, /* Ouguiya */
    { "MUR", 2 }, /* Mauritius Rupee */
    { "MVR", 2 }, /* Rufiyaa */
    { "MWK", 2 }, /* Malawi Kwacha */
    { "MXN", 2 }, /* Mexican Peso */
    { "MXV", 2 }, /* Mexican Unidad de Inversion (UDI) */
    { "MYR", 2 }, /* Malaysian Ringgit */
    { "MZN", 2 }, /* Mozambique Metical */
    { "NAD", 2 }, /* Namibia Dollar */
    { "NGN", 2 }, /* Naira */
    { "NIO", 2 }, /* Cordoba Oro */
    { "NOK", 2 }, /* Norwegian Krone */
    { "NPR", 2 }, /* Nepalese Rupee */
    { "NZD", 2 }, /* New Zealand Dollar */
    { "OMR", 3 }, /* Rial Omani */
    { "PAB", 2 }, /* Balboa */
    { "PEN", 2 }, /* Sol */
    { "PGK", 2 }, /* Kina */
    { "PHP", 2 }, /* Philippine Peso */
    { "PKR", 2 }, /* Pakistan Rupee */
    { "PLN", 2 }, /* Zloty */
    { "PYG", 0 }, /* Guarani */
    { "QAR", 2 }, /* Qatari Rial */
    { "RON", 2 }, /* Romanian Leu */
    { "RSD", 2 }, /* Serbian Dinar */
    { "RUB", 2 }, /* Russian Ruble */
    { "RWF", 0 }, /* Rwanda Franc */
    { "SAR", 2 }, /* Saudi Riyal */
    { "SBD", 2 }, /* Solomon Islands Dollar */
    { "SCR", 2 }, /* Seychelles Rupee */
    { "SDG", 2 }, /* Sudanese Pound */
    { "SEK", 2 }, /* Swedish Krona */
    { "SGD", 2 }, /* Singapore Dollar */
    { "SHP", 2 }, /* Saint Helena Pound */
    { "SLE", 2 }, /* Leone */
    { "SLL", 2 }, /* Leone */
    { "SOS", 2 }, /* Somali Shilling */
    { "SRD", 2 }, /* Surinam Dollar */
    { "SSP", 2 }, /* South Sudanese Pound */
    { "STN", 2 }, /* Dobra */
    { "SVC", 2 }, /* El Salvador Colon */
    { "SYP", 2 }, /* Syrian Pound */
    { "SZL", 2 }, /* Lilangeni */
    { "THB", 2 }, /* Baht */
    { "TJS", 2 }, /* Somoni */
    { "TMT", 2 }, /* Turkmenistan New Manat */
    { "TND", 3 }, /* Tunisian Dinar */
    { "TOP", 2 }, /* Pa’anga */
    { "TRY", 2 }, /* Turkish Lira */
    { "TTD", 2 }, /* Trinidad and Tobago Dollar */
    { "TWD", 2 }, /* New Taiwan Dollar */
    { "TZS", 2 }, /* Tanzanian Shilling */
    { "UAH", 2 }, /* Hryvnia */
    { "UGX", 0 }, /* Uganda Shilling */
    { "USD", 2 }, /* US Dollar */
    { "USN", 2 }, /* US Dollar (Next day) */
    { "UYI", 0 }, /* Uruguay Peso en Unidades Indexadas (UI) */
    { "UYU", 2 }, /* Peso Uruguayo */
    { "UYW", 4 }, /* Unidad Previsional */
    { "UZS", 2 }, /* Uzbekistan Sum */
    { "VED", 2 }, /* Bolívar Soberano */
    { "VES", 2 }, /* Bolívar Soberano */
    { "VND", 0 }, /* Dong */
    { "VUV", 0 }, /* Vatu */
    { "WST", 2 }, /* Tala */
    { "XAF", 0 }, /* CFA Franc BEAC */
    { "XCD", 2 }, /* East Caribbean Dollar */
    { "XCG", 2 }, /* Caribbean Guilder */
    { "XOF", 0 }, /* CFA Franc BCEAO */
    { "XPF", 0 }, /* CFP Franc */
    { "YER", 2 }, /* Yemeni Rial */
    { "ZAR", 2 }, /* Rand */
    { "ZMW", 2 }, /* Zambian Kwacha */
    { "ZWG", 2 }, /* Zimbabwe Gold */
    { "ZWL", 2 }, /* Zimbabwe Dollar */
};

#define S_N_COUNTRIES  (sizeof(s_countries) / sizeof(s_countries[0]))
#define S_N_CURRENCIES (sizeof(s_currencies) / sizeof(s_currencies[0]))

static int
s_all_upper(const char *code, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (code[i] < 'A' || code[i] > 'Z') {
            return 0;
        }
    }
    return 1;
}

const char *
amity_country_region(const char *code, size_t len)
{
    if (code == NULL || len != 2 || !s_all_upper(code, len)) {
        return NULL;
    }
    size_t lo = 0;
    size_t hi = S_N_COUNTRIES;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = memcmp(code, s_countries[mid].code, 2);
        if (cmp == 0) {
            return s_countries[mid].region;
        }
        if (cmp < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return NULL;
}

int
amity_currency_exponent(const char *code, size_t len)
{
    if (code == NULL || len != 3 || !s_all_upper(code, len)) {
        return -1;
    }
    size_t lo = 0;
    size_t hi = S_N_CURRENCIES;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int cmp = memcmp(code, s_currencies[mid].code, 3);
        if (cmp == 0) {
            return s_currencies[mid].exponent;
        }
        if (cmp < 0) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return -1;
}

size_t
amity_country_count(void)
{
    return S_N_COUNTRIES;
}

size_t
amity_currency_count(void)
{
    return S_N_CURRENCIES;
}
